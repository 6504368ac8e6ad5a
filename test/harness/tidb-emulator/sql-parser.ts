// The statements the emulator understands, parsed into a small AST. Anything else is ERROR 1064, as a
// server answers SQL it cannot parse. The subset: SELECT of expressions (literals, ?, @user, @@system
// variables, DATABASE(), CONNECTION_ID(), VERSION(), CONCAT(), + and -) optionally FROM the shared
// table kv (k, v) with WHERE k = …; SET of user and system variables, SET NAMES, SET SESSION_STATES;
// USE; BEGIN/START TRANSACTION/COMMIT/ROLLBACK; SHOW SESSION_STATES; CREATE/DROP TEMPORARY TABLE;
// CREATE DATABASE; INSERT/REPLACE INTO kv VALUES; DELETE FROM kv.
import { ER_PARSE, SqlError } from './errors.js';
import { tokenize, type Token } from './sql-lexer.js';
import type { SqlValue } from './values.js';

export type Expr =
  | { t: 'lit'; v: SqlValue }
  | { t: 'param'; index: number }
  | { t: 'user-var'; name: string }
  | { t: 'sys-var'; name: string; scope: string }
  | { t: 'word'; text: string }
  | { t: 'call'; fn: string; args: Expr[] }
  | { t: 'bin'; op: '+' | '-'; a: Expr; b: Expr }
  | { t: 'neg'; a: Expr };

export interface TableRef {
  db: string | null;
  table: string;
}

export type Assignment =
  | { target: 'user'; name: string; value: Expr }
  | { target: 'system'; name: string; scope: string; value: Expr | 'default' };

export type Statement =
  | { t: 'select'; items: Array<{ expr: Expr; name: string }>; from: TableRef | null; where: { column: string; value: Expr } | null }
  | { t: 'set'; assignments: Assignment[] }
  | { t: 'set-names'; charset: string; collation: string | null }
  | { t: 'set-session-states'; json: string }
  | { t: 'use'; db: string }
  | { t: 'begin' }
  | { t: 'commit' }
  | { t: 'rollback' }
  | { t: 'show-session-states' }
  | { t: 'create-temporary-table'; name: string }
  | { t: 'drop-temporary-table'; name: string; ifExists: boolean }
  | { t: 'create-database'; name: string; ifNotExists: boolean }
  | { t: 'insert'; replace: boolean; table: TableRef; rows: Expr[][] }
  | { t: 'delete'; table: TableRef; where: { column: string; value: Expr } | null };

class Parser {
  private pos = 0;
  private params = 0;
  private readonly tokens: Token[];

  constructor(private readonly sql: string) {
    this.tokens = tokenize(sql);
  }

  private peek(offset = 0): Token {
    return this.tokens[Math.min(this.pos + offset, this.tokens.length - 1)]!;
  }

  private next(): Token {
    const t = this.peek();
    if (t.kind !== 'end') this.pos++;
    return t;
  }

  private error(): SqlError {
    const t = this.peek();
    const near = t.kind === 'end' ? 'end of statement' : `'${this.sql.slice(t.start, t.start + 40)}'`;
    return new SqlError(ER_PARSE, `You have an error in your SQL syntax; check the manual that corresponds to your TiDB version for the right syntax to use near ${near} (the TiDB emulator knows a small subset of SQL)`);
  }

  private isWord(word: string, offset = 0): boolean {
    const t = this.peek(offset);
    return t.kind === 'word' && t.text.toUpperCase() === word;
  }

  private acceptWord(...words: string[]): boolean {
    if (!words.every((w, i) => this.isWord(w, i))) return false;
    this.pos += words.length;
    return true;
  }

  private expectWord(...words: string[]): void {
    if (!this.acceptWord(...words)) throw this.error();
  }

  private acceptPunct(p: string): boolean {
    const t = this.peek();
    if (t.kind !== 'punct' || t.text !== p) return false;
    this.pos++;
    return true;
  }

  private expectPunct(p: string): void {
    if (!this.acceptPunct(p)) throw this.error();
  }

  private identifier(): string {
    const t = this.next();
    if (t.kind !== 'word' && t.kind !== 'quoted-ident') throw this.error();
    return t.text;
  }

  private tableRef(): TableRef {
    const first = this.identifier();
    if (this.acceptPunct('.')) return { db: first, table: this.identifier() };
    return { db: null, table: first };
  }

  /** End of statement: an optional `;`, then nothing. */
  private finish<S extends Statement>(s: S): S {
    this.acceptPunct(';');
    if (this.peek().kind !== 'end') throw this.error();
    return s;
  }

  parse(): { statement: Statement; params: number } {
    const statement = this.statement();
    return { statement, params: this.params };
  }

  private statement(): Statement {
    if (this.acceptWord('SELECT')) return this.finish(this.select());
    if (this.acceptWord('SET')) return this.finish(this.set());
    if (this.acceptWord('USE')) return this.finish({ t: 'use', db: this.identifier() });
    if (this.acceptWord('BEGIN') || this.acceptWord('START', 'TRANSACTION')) return this.finish({ t: 'begin' });
    if (this.acceptWord('COMMIT')) return this.finish({ t: 'commit' });
    if (this.acceptWord('ROLLBACK')) return this.finish({ t: 'rollback' });
    if (this.acceptWord('SHOW', 'SESSION_STATES')) return this.finish({ t: 'show-session-states' });
    if (this.acceptWord('CREATE', 'TEMPORARY', 'TABLE')) {
      this.acceptWord('IF', 'NOT', 'EXISTS');
      const name = this.tableRef().table;
      // The column list is not interpreted: a temporary table only matters for migration (8146).
      while (this.peek().kind !== 'end') this.next();
      return { t: 'create-temporary-table', name };
    }
    if (this.acceptWord('DROP', 'TEMPORARY', 'TABLE')) {
      const ifExists = this.acceptWord('IF', 'EXISTS');
      return this.finish({ t: 'drop-temporary-table', name: this.tableRef().table, ifExists });
    }
    if (this.acceptWord('CREATE', 'DATABASE') || this.acceptWord('CREATE', 'SCHEMA')) {
      const ifNotExists = this.acceptWord('IF', 'NOT', 'EXISTS');
      return this.finish({ t: 'create-database', name: this.identifier(), ifNotExists });
    }
    if (this.isWord('INSERT') || this.isWord('REPLACE')) {
      const replace = this.next().text.toUpperCase() === 'REPLACE';
      this.expectWord('INTO');
      const table = this.tableRef();
      if (this.acceptPunct('(')) {
        // Only the table's own column order is supported: (k, v).
        const cols = [this.identifier().toLowerCase()];
        while (this.acceptPunct(',')) cols.push(this.identifier().toLowerCase());
        this.expectPunct(')');
        if (cols.join(',') !== 'k,v') throw this.error();
      }
      if (!this.acceptWord('VALUES')) this.expectWord('VALUE');
      const rows: Expr[][] = [];
      do {
        this.expectPunct('(');
        const row = [this.expr()];
        while (this.acceptPunct(',')) row.push(this.expr());
        this.expectPunct(')');
        rows.push(row);
      } while (this.acceptPunct(','));
      return this.finish({ t: 'insert', replace, table, rows });
    }
    if (this.acceptWord('DELETE', 'FROM')) {
      const table = this.tableRef();
      return this.finish({ t: 'delete', table, where: this.where() });
    }
    throw this.error();
  }

  private where(): { column: string; value: Expr } | null {
    if (!this.acceptWord('WHERE')) return null;
    const column = this.identifier().toLowerCase();
    this.expectPunct('=');
    return { column, value: this.expr() };
  }

  private select(): Statement {
    const items: Array<{ expr: Expr; name: string }> = [];
    do {
      const start = this.peek().start;
      const expr = this.expr();
      let name = this.sql.slice(start, this.tokens[this.pos - 1]!.end);
      if (this.acceptWord('AS')) name = this.aliasName();
      else if (this.peek().kind === 'quoted-ident' || this.peek().kind === 'string' || (this.peek().kind === 'word' && !this.isWord('FROM'))) {
        name = this.aliasName();
      }
      items.push({ expr, name });
    } while (this.acceptPunct(','));
    const from = this.acceptWord('FROM') ? this.tableRef() : null;
    const where = from ? this.where() : null;
    return { t: 'select', items, from, where };
  }

  private aliasName(): string {
    const t = this.next();
    if (t.kind !== 'word' && t.kind !== 'quoted-ident' && t.kind !== 'string') throw this.error();
    return t.text;
  }

  private set(): Statement {
    if (this.acceptWord('SESSION_STATES')) {
      const t = this.next();
      if (t.kind !== 'string') throw this.error();
      return { t: 'set-session-states', json: t.text };
    }
    if (this.acceptWord('NAMES')) {
      const charset = this.nameOrString();
      const collation = this.acceptWord('COLLATE') ? this.nameOrString() : null;
      return { t: 'set-names', charset: charset.toLowerCase(), collation: collation?.toLowerCase() ?? null };
    }
    const assignments: Assignment[] = [];
    let scope = '';
    do {
      if (this.acceptWord('SESSION') || this.acceptWord('LOCAL')) scope = 'session';
      else if (this.acceptWord('GLOBAL')) scope = 'global';
      const t = this.next();
      let target: { kind: 'user' | 'system'; name: string; scope: string };
      if (t.kind === 'user-var') target = { kind: 'user', name: t.text, scope: '' };
      else if (t.kind === 'sys-var') target = { kind: 'system', name: t.text, scope: t.scope || scope };
      else if (t.kind === 'word' || t.kind === 'quoted-ident') target = { kind: 'system', name: t.text.toLowerCase(), scope };
      else throw this.error();
      this.expectPunct('=');
      if (target.kind === 'user') assignments.push({ target: 'user', name: target.name, value: this.expr() });
      else assignments.push({ target: 'system', name: target.name, scope: target.scope, value: this.acceptWord('DEFAULT') ? 'default' : this.expr() });
    } while (this.acceptPunct(','));
    return { t: 'set', assignments };
  }

  private nameOrString(): string {
    const t = this.next();
    if (t.kind !== 'word' && t.kind !== 'string' && t.kind !== 'quoted-ident') throw this.error();
    return t.text;
  }

  private expr(): Expr {
    let left = this.unary();
    for (;;) {
      if (this.acceptPunct('+')) left = { t: 'bin', op: '+', a: left, b: this.unary() };
      else if (this.acceptPunct('-')) left = { t: 'bin', op: '-', a: left, b: this.unary() };
      else return left;
    }
  }

  private unary(): Expr {
    if (this.acceptPunct('-')) return { t: 'neg', a: this.unary() };
    return this.primary();
  }

  private primary(): Expr {
    const t = this.next();
    switch (t.kind) {
      case 'number':
        return { t: 'lit', v: /^\d+$/.test(t.text) ? BigInt(t.text) : Number(t.text) };
      case 'string':
        return { t: 'lit', v: t.text };
      case 'param':
        return { t: 'param', index: this.params++ };
      case 'user-var':
        return { t: 'user-var', name: t.text };
      case 'sys-var':
        return { t: 'sys-var', name: t.text, scope: t.scope ?? '' };
      case 'quoted-ident':
        return { t: 'word', text: t.text };
      case 'word': {
        const upper = t.text.toUpperCase();
        if (upper === 'NULL') return { t: 'lit', v: null };
        if (upper === 'TRUE') return { t: 'lit', v: 1n };
        if (upper === 'FALSE') return { t: 'lit', v: 0n };
        if (this.acceptPunct('(')) {
          const args: Expr[] = [];
          if (!this.acceptPunct(')')) {
            do args.push(this.expr());
            while (this.acceptPunct(','));
            this.expectPunct(')');
          }
          return { t: 'call', fn: upper, args };
        }
        return { t: 'word', text: t.text };
      }
      case 'punct':
        if (t.text === '(') {
          const inner = this.expr();
          this.expectPunct(')');
          return inner;
        }
        break;
      default:
        break;
    }
    if (t.kind !== 'end') this.pos--;
    throw this.error();
  }
}

export function parseSql(sql: string): { statement: Statement; params: number } {
  return new Parser(sql).parse();
}
