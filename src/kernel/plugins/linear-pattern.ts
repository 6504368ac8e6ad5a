/**
 * Regular expressions from configuration, matched against client text in linear time.
 *
 * JavaScript's RegExp backtracks: `(a|aa)*b` takes exponential time and `\w+;` quadratic time on
 * hostile input, and a plugin matching every statement against an operator's pattern would let one client
 * stall every session. This compiles the usual subset of RegExp syntax to a Thompson automaton and runs
 * all its states at once over the text (Pike's method), so a text of n characters costs at most
 * n × (the pattern's size) steps whatever the pattern. Syntax it cannot match that way — backreferences
 * and lookaround — is refused when the pattern is compiled, with the reason.
 *
 * Supported: literals and escapes (\t \n \r \f \v \0 \xHH \uHHHH, escaped punctuation), `.`, classes
 * `[…]` / `[^…]` with ranges, \d \D \w \W \s \S, `^` `$` (whole text), \b \B, groups `(…)` `(?:…)`
 * `(?<name>…)` (nothing is captured), `|`, and `* + ? {n} {n,} {n,m}` greedy or lazy (the same for a
 * yes/no match). Semantics are RegExp's without the `u` flag, matching UTF-16 code units.
 */

export interface TextPattern {
  /** The pattern as configured. */
  readonly source: string;
  /** Does the pattern match anywhere in `text`? */
  test(text: string): boolean;
}

export interface TextPatternOptions {
  ignoreCase?: boolean;
  /** `.` matches line terminators too (RegExp's `s` flag). */
  dotAll?: boolean;
}

/** Bounded repeats are expanded: a cap keeps `x{1000}{1000}` from building a huge automaton. */
const MAX_PROGRAM = 20_000;

/** A pattern that RegExp accepts but that cannot be matched in linear time (or is too large). */
export class UnsupportedPatternError extends Error {}

// ---- character sets -------------------------------------------------------------------------------

interface CharSet {
  /** Membership for code units < 128, case folding already applied. */
  readonly ascii: Uint8Array;
  /** Inclusive [from, to] ranges of code units ≥ 128 (and below: kept to fold non-ASCII to ASCII). */
  readonly ranges: number[];
  readonly negated: boolean;
}

const LINE_TERMINATORS = [0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029];
const DIGIT = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE = [0x09, 0x0d, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f,
  0x205f, 0x205f, 0x3000, 0x3000, 0xfeff, 0xfeff];

const inRanges = (ranges: readonly number[], c: number): boolean => {
  for (let k = 0; k < ranges.length; k += 2) if (c >= ranges[k]! && c <= ranges[k + 1]!) return true;
  return false;
};

/** The complement of sorted-or-not ranges over 0..0xffff. */
function complement(ranges: readonly number[]): number[] {
  const pairs: Array<[number, number]> = [];
  for (let k = 0; k < ranges.length; k += 2) pairs.push([ranges[k]!, ranges[k + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  const out: number[] = [];
  let next = 0;
  for (const [from, to] of pairs) {
    if (from > next) out.push(next, from - 1);
    next = Math.max(next, to + 1);
  }
  if (next <= 0xffff) out.push(next, 0xffff);
  return out;
}

function foldVariants(c: number): number[] {
  const s = String.fromCharCode(c);
  const out = [c];
  for (const v of [s.toLowerCase(), s.toUpperCase()]) if (v.length === 1 && v.charCodeAt(0) !== c) out.push(v.charCodeAt(0));
  return out;
}

function makeSet(ranges: readonly number[], negated: boolean, ignoreCase: boolean): CharSet {
  const ascii = new Uint8Array(128);
  for (let c = 0; c < 128; c++) {
    const hit = (ignoreCase ? foldVariants(c) : [c]).some((v) => inRanges(ranges, v));
    ascii[c] = hit !== negated ? 1 : 0;
  }
  return { ascii, ranges: [...ranges], negated };
}

function setHas(set: CharSet, c: number, ignoreCase: boolean): boolean {
  if (c < 128) return set.ascii[c] === 1;
  const hit = ignoreCase ? foldVariants(c).some((v) => inRanges(set.ranges, v)) : inRanges(set.ranges, c);
  return hit !== set.negated;
}

// ---- parsing to a tree ------------------------------------------------------------------------------

type Node =
  | { kind: 'empty' }
  | { kind: 'set'; ranges: number[]; negated: boolean }
  | { kind: 'assert'; what: '^' | '$' | 'b' | 'B' }
  | { kind: 'concat'; parts: Node[] }
  | { kind: 'alt'; options: Node[] }
  | { kind: 'repeat'; body: Node; min: number; max: number };

class Parser {
  private i = 0;
  constructor(private readonly src: string, private readonly dotAll: boolean) {}

  parse(): Node {
    const node = this.alternation();
    if (this.i < this.src.length) throw new UnsupportedPatternError(`unexpected "${this.src[this.i]}" at ${this.i}`);
    return node;
  }

  private refuse(what: string, why = 'cannot be matched in linear time'): never {
    throw new UnsupportedPatternError(`${what} at character ${this.i + 1} ${why}; it is not supported`);
  }

  private alternation(): Node {
    const options = [this.sequence()];
    while (this.src[this.i] === '|') {
      this.i++;
      options.push(this.sequence());
    }
    return options.length === 1 ? options[0]! : { kind: 'alt', options };
  }

  private sequence(): Node {
    const parts: Node[] = [];
    while (this.i < this.src.length && this.src[this.i] !== '|' && this.src[this.i] !== ')') {
      let atom = this.atom();
      for (;;) {
        const q = this.quantifier();
        if (!q) break;
        atom = { kind: 'repeat', body: atom, min: q.min, max: q.max };
      }
      parts.push(atom);
    }
    return parts.length === 1 ? parts[0]! : { kind: 'concat', parts };
  }

  private quantifier(): { min: number; max: number } | null {
    const c = this.src[this.i];
    let q: { min: number; max: number } | null = null;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    if (q) this.i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i, this.i + 24));
      if (!m) return null; // a literal "{" (RegExp allows it without the u flag)
      this.i += m[0].length;
      const min = Number(m[1]);
      q = { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) };
    } else return null;
    if (this.src[this.i] === '?') this.i++; // lazy: the same for a yes/no answer
    return q;
  }

  private atom(): Node {
    const c = this.src[this.i++]!;
    switch (c) {
      case '^': return { kind: 'assert', what: '^' };
      case '$': return { kind: 'assert', what: '$' };
      case '.': return { kind: 'set', ranges: this.dotAll ? [0, 0xffff] : complement(LINE_TERMINATORS), negated: false };
      case '[': return this.charClass();
      case '(': {
        if (this.src.startsWith('?:', this.i)) this.i += 2;
        else if (/^\?<[A-Za-z_$]/.test(this.src.slice(this.i, this.i + 3))) this.i = this.src.indexOf('>', this.i) + 1;
        else if (this.src[this.i] === '?') this.refuse(`the lookaround "(?${this.src[this.i + 1] ?? ''}"`);
        const inner = this.alternation();
        if (this.src[this.i] !== ')') throw new UnsupportedPatternError('unterminated group');
        this.i++;
        return inner;
      }
      case '\\': return this.escape(false);
      default: return { kind: 'set', ranges: [c.charCodeAt(0), c.charCodeAt(0)], negated: false };
    }
  }

  /** After a backslash; inClass: inside [...], where \b is a backspace and assertions do not exist. */
  private escape(inClass: boolean): Node & { kind: 'set' | 'assert' } {
    const c = this.src[this.i++];
    if (c === undefined) throw new UnsupportedPatternError('pattern ends with a backslash');
    const set = (ranges: number[], negated = false) => ({ kind: 'set' as const, ranges, negated });
    const one = (code: number) => set([code, code]);
    switch (c) {
      case 'd': return set(DIGIT);
      case 'D': return set(DIGIT, true);
      case 'w': return set(WORD);
      case 'W': return set(WORD, true);
      case 's': return set(SPACE);
      case 'S': return set(SPACE, true);
      case 'b': return inClass ? one(0x08) : { kind: 'assert', what: 'b' };
      case 'B': return inClass ? one(0x42) : { kind: 'assert', what: 'B' };
      case 't': return one(0x09);
      case 'n': return one(0x0a);
      case 'r': return one(0x0d);
      case 'f': return one(0x0c);
      case 'v': return one(0x0b);
      case 'x': case 'u': {
        const digits = c === 'x' ? 2 : 4;
        const hex = this.src.slice(this.i, this.i + digits);
        if (!new RegExp(`^[0-9A-Fa-f]{${digits}}$`).test(hex)) return one(c.charCodeAt(0));
        this.i += digits;
        return one(parseInt(hex, 16));
      }
      case 'k': this.i--; return this.refuse('the backreference "\\k"');
      default:
        if (c >= '1' && c <= '9') { this.i--; return this.refuse(`the backreference "\\${c}"`); }
        if (c === '0' && !/[0-9]/.test(this.src[this.i] ?? '')) return one(0);
        if (/[A-Za-z0-9]/.test(c)) { this.i--; return this.refuse(`the escape "\\${c}"`, 'is not one of \\d \\w \\s \\b \\t \\n \\r \\f \\v \\0 \\x \\u'); }
        return one(c.charCodeAt(0)); // escaped punctuation stands for itself
    }
  }

  private charClass(): Node {
    const negated = this.src[this.i] === '^';
    if (negated) this.i++;
    const ranges: number[] = [];
    while (this.src[this.i] !== ']') {
      if (this.i >= this.src.length) throw new UnsupportedPatternError('unterminated character class');
      const from = this.classAtom();
      if (this.src[this.i] === '-' && this.src[this.i + 1] !== ']' && this.i + 1 < this.src.length && from.single) {
        this.i++;
        const to = this.classAtom();
        if (!to.single) { ranges.push(...from.ranges, 0x2d, 0x2d, ...to.ranges); continue; }
        ranges.push(from.ranges[0]!, to.ranges[0]!);
      } else ranges.push(...from.ranges);
    }
    this.i++;
    return { kind: 'set', ranges, negated };
  }

  private classAtom(): { ranges: number[]; single: boolean } {
    const c = this.src[this.i++]!;
    if (c !== '\\') return { ranges: [c.charCodeAt(0), c.charCodeAt(0)], single: true };
    const e = this.escape(true);
    if (e.kind !== 'set') throw new UnsupportedPatternError('assertion inside a character class');
    const ranges = e.negated ? complement(e.ranges) : e.ranges;
    return { ranges, single: !e.negated && ranges.length === 2 && ranges[0] === ranges[1] };
  }
}

// ---- compiling to a program ---------------------------------------------------------------------

const enum Op { Char, Split, Jump, Assert, Match }

interface Program {
  readonly op: Uint8Array;
  /** Char: set index; Split / Jump: first target; Assert: 0 ^, 1 $, 2 \b, 3 \B. */
  readonly a: Int32Array;
  /** Split: second target. */
  readonly b: Int32Array;
  readonly sets: CharSet[];
  readonly length: number;
}

class Compiler {
  readonly op: number[] = [];
  readonly a: number[] = [];
  readonly b: number[] = [];
  readonly sets: CharSet[] = [];
  constructor(private readonly ignoreCase: boolean) {}

  private emit(op: Op, a = 0, b = 0): number {
    if (this.op.length >= MAX_PROGRAM) {
      throw new UnsupportedPatternError(`the pattern is too large once its repeats are expanded (over ${MAX_PROGRAM} steps)`);
    }
    this.op.push(op); this.a.push(a); this.b.push(b);
    return this.op.length - 1;
  }

  node(n: Node): void {
    switch (n.kind) {
      case 'empty': return;
      case 'set':
        this.sets.push(makeSet(n.ranges, n.negated, this.ignoreCase));
        this.emit(Op.Char, this.sets.length - 1);
        return;
      case 'assert':
        this.emit(Op.Assert, ['^', '$', 'b', 'B'].indexOf(n.what));
        return;
      case 'concat':
        for (const p of n.parts) this.node(p);
        return;
      case 'alt': {
        const jumps: number[] = [];
        for (let k = 0; k < n.options.length; k++) {
          if (k < n.options.length - 1) {
            const split = this.emit(Op.Split);
            this.a[split] = split + 1;
            this.node(n.options[k]!);
            jumps.push(this.emit(Op.Jump));
            this.b[split] = this.op.length;
          } else this.node(n.options[k]!);
        }
        for (const j of jumps) this.a[j] = this.op.length;
        return;
      }
      case 'repeat': {
        for (let k = 0; k < n.min; k++) this.node(n.body);
        if (n.max === Infinity) {
          const split = this.emit(Op.Split);
          this.a[split] = split + 1;
          this.node(n.body);
          this.emit(Op.Jump, split);
          this.b[split] = this.op.length;
        } else {
          const splits: number[] = [];
          for (let k = n.min; k < n.max; k++) {
            const split = this.emit(Op.Split);
            this.a[split] = split + 1;
            splits.push(split);
            this.node(n.body);
          }
          for (const s of splits) this.b[s] = this.op.length;
        }
        return;
      }
    }
  }

  finish(): Program {
    this.emit(Op.Match);
    return {
      op: Uint8Array.from(this.op), a: Int32Array.from(this.a), b: Int32Array.from(this.b), sets: this.sets, length: this.op.length,
    };
  }
}

// ---- running ------------------------------------------------------------------------------------

const isWordUnit = (c: number): boolean =>
  (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5a) || c === 0x5f || (c >= 0x61 && c <= 0x7a);

/** The states alive at one text position: a sparse set, so adding and clearing cost O(1). */
class StateList {
  readonly dense: Int32Array;
  readonly sparse: Int32Array;
  size = 0;
  constructor(n: number) {
    this.dense = new Int32Array(n);
    this.sparse = new Int32Array(n);
  }
  has(pc: number): boolean {
    const k = this.sparse[pc]!;
    return k < this.size && this.dense[k] === pc;
  }
  add(pc: number): void {
    this.sparse[pc] = this.size;
    this.dense[this.size++] = pc;
  }
}

class Matcher implements TextPattern {
  private current: StateList;
  private next: StateList;
  private readonly stack: Int32Array;

  /** ASCII characters a match can start with (assertions ignored: a superset), to skip ahead while no state is alive. */
  private readonly firstAscii = new Uint8Array(128);
  /** Sets of the characters a match can start with, for non-ASCII text. */
  private readonly firstSets: CharSet[] = [];
  /** The start state can only reach a character at position 0 (`^…`): no new start after it. */
  private readonly anchored: boolean;
  /** The pattern can match without reading a character (`$`, `\b`, `a*`): every position needs its try. */
  private readonly matchesEmpty: boolean;
  /** Membership of ASCII characters in every set, at [set × 128 + character]. */
  private readonly asciiTable: Uint8Array;

  constructor(readonly source: string, private readonly prog: Program, private readonly ignoreCase: boolean) {
    this.current = new StateList(prog.length);
    this.next = new StateList(prog.length);
    this.stack = new Int32Array(prog.length * 2 + 2);
    // Walk the start closure twice: once passing every assertion (which characters can begin a match),
    // once stopping at ^ (can a match begin after position 0?).
    const first = this.closure(() => true);
    for (const pc of first) {
      if (prog.op[pc] !== Op.Char) continue;
      const set = prog.sets[prog.a[pc]!]!;
      this.firstSets.push(set);
      for (let c = 0; c < 128; c++) this.firstAscii[c] ||= set.ascii[c]!;
    }
    this.anchored = this.closure((kind) => kind !== 0).every((pc) => prog.op[pc] !== Op.Char && prog.op[pc] !== Op.Match);
    this.matchesEmpty = first.some((pc) => prog.op[pc] === Op.Match);
    this.asciiTable = new Uint8Array(prog.sets.length * 128);
    prog.sets.forEach((set, k) => this.asciiTable.set(set.ascii, k * 128));
  }

  /** States reachable from the start without reading a character, through the assertions `passes` lets through. */
  private closure(passes: (assertKind: number) => boolean): number[] {
    const { op, a, b } = this.prog;
    const seen = new Set<number>();
    const todo = [0];
    while (todo.length > 0) {
      const pc = todo.pop()!;
      if (seen.has(pc)) continue;
      seen.add(pc);
      if (op[pc] === Op.Jump) todo.push(a[pc]!);
      else if (op[pc] === Op.Split) todo.push(a[pc]!, b[pc]!);
      else if (op[pc] === Op.Assert && passes(a[pc]!)) todo.push(pc + 1);
    }
    return [...seen];
  }

  private mayStartWith(c: number): boolean {
    if (c < 128) return this.firstAscii[c] === 1;
    for (const set of this.firstSets) if (setHas(set, c, this.ignoreCase)) return true;
    return false;
  }

  /** Adds `pc` and everything reachable from it without reading a character, at text position `at`. */
  private addState(list: StateList, start: number, text: string, at: number): boolean {
    const { op, a, b } = this.prog;
    const stack = this.stack;
    let top = 0;
    stack[top++] = start;
    while (top > 0) {
      const pc = stack[--top]!;
      if (list.has(pc)) continue;
      list.add(pc);
      switch (op[pc]) {
        case Op.Match: return true;
        case Op.Jump: stack[top++] = a[pc]!; break;
        case Op.Split: stack[top++] = b[pc]!; stack[top++] = a[pc]!; break;
        case Op.Assert: {
          const kind = a[pc]!;
          let holds: boolean;
          if (kind === 0) holds = at === 0;
          else if (kind === 1) holds = at === text.length;
          else {
            const boundary = (at > 0 && isWordUnit(text.charCodeAt(at - 1))) !== (at < text.length && isWordUnit(text.charCodeAt(at)));
            holds = kind === 2 ? boundary : !boundary;
          }
          if (holds) stack[top++] = pc + 1;
          break;
        }
        default: break; // Char: waits for the next character
      }
    }
    return false;
  }

  test(text: string): boolean {
    const { op, a, sets } = this.prog;
    const table = this.asciiTable;
    const n = text.length;
    let current = this.current;
    let next = this.next;
    current.size = 0;
    for (let at = 0; ; at++) {
      const c = at < n ? text.charCodeAt(at) : -1;
      if (at === 0 || !this.anchored) {
        // A match may start here (unanchored search): the start state joins the live ones — unless the
        // character cannot begin a match, which, when nothing is alive either, lets the scan skip ahead.
        if (this.matchesEmpty || (c >= 0 && this.mayStartWith(c))) {
          if (this.addState(current, 0, text, at)) return true;
        } else if (current.size === 0) {
          if (c < 0) return false;
          while (at + 1 < n && !this.mayStartWith(text.charCodeAt(at + 1))) at++;
          continue;
        }
      } else if (current.size === 0) return false;
      if (c < 0) return false;
      next.size = 0;
      const dense = current.dense;
      for (let k = 0; k < current.size; k++) {
        const pc = dense[k]!;
        if (op[pc] !== Op.Char) continue;
        const set = a[pc]!;
        if (c < 128 ? table[(set << 7) | c] === 1 : setHas(sets[set]!, c, this.ignoreCase)) {
          if (this.addState(next, pc + 1, text, at + 1)) return true;
        }
      }
      const swap = current;
      current = next;
      next = swap;
    }
  }
}

/**
 * Compiles `source` (RegExp syntax) for linear-time matching. Throws a SyntaxError for what RegExp
 * itself rejects, and an UnsupportedPatternError naming the construct for backreferences, lookaround and
 * patterns too large once expanded.
 */
export function compileTextPattern(source: string, options: TextPatternOptions = {}): TextPattern {
  new RegExp(source, `${options.ignoreCase ? 'i' : ''}${options.dotAll ? 's' : ''}`); // RegExp's own syntax errors first
  const compiler = new Compiler(options.ignoreCase ?? false);
  compiler.node(new Parser(source, options.dotAll ?? false).parse());
  return new Matcher(source, compiler.finish(), options.ignoreCase ?? false);
}
