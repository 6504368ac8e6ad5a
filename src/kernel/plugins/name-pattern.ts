/**
 * User/tenant name patterns in plugin configs: "app_*" matches any run of characters, "?" one
 * character (UTF-16 code unit), everything else literally (no regex surprises for operators).
 *
 * Matched by hand, not by a RegExp: `^.*a.*b$` backtracks polynomially, and the name comes from the
 * client (a user name can be as long as a packet). Here the star-separated pieces are found leftmost in
 * turn — correct for globs, since a piece placed earlier never prevents the rest from matching — so a
 * name costs at most (its length × the pattern's length).
 */
export interface NamePattern {
  /** The glob as configured. */
  readonly glob: string;
  test(name: string): boolean;
}

/** Does `piece` (with `?` wildcards) match `name` at `at`? */
function pieceAt(name: string, at: number, piece: string): boolean {
  for (let k = 0; k < piece.length; k++) {
    const p = piece.charCodeAt(k);
    if (p !== 0x3f /* ? */ && p !== name.charCodeAt(at + k)) return false;
  }
  return true;
}

export function namePattern(glob: string): NamePattern {
  const pieces = glob.split('*');
  const first = pieces[0]!;
  const last = pieces[pieces.length - 1]!;
  const middle = pieces.slice(1, -1).filter((p) => p.length > 0);
  const minLength = pieces.reduce((sum, p) => sum + p.length, 0);
  const test = (name: string): boolean => {
    if (pieces.length === 1) return name.length === first.length && pieceAt(name, 0, first);
    if (name.length < minLength || !pieceAt(name, 0, first)) return false;
    const tail = name.length - last.length;
    if (!pieceAt(name, tail, last)) return false;
    let at = first.length;
    for (const piece of middle) {
      while (at + piece.length <= tail && !pieceAt(name, at, piece)) at++;
      if (at + piece.length > tail) return false;
      at += piece.length;
    }
    return true;
  };
  return { glob, test };
}
