// Seeded randomness for the fuzzers: every case draws from its own generator, seeded from the run's
// seed and the case's index, so `--seed S --case K` replays case K exactly, alone.

/** Lengths at the edges of length encodings and packet sizes. */
const BOUNDARY_LENGTHS = [0, 1, 2, 3, 4, 8, 9, 250, 251, 252, 0xffff, 0x10000];

/** sfc32: small, fast, good enough statistical quality for input generation; 32-bit state words. */
export class FuzzRandom {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.next();
  }

  /** Uniform 32-bit unsigned integer. */
  next(): number {
    const t = (((this.a + this.b) >>> 0) + this.d) >>> 0;
    this.d = (this.d + 1) >>> 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) >>> 0;
    this.c = ((this.c << 21) | (this.c >>> 11)) >>> 0;
    this.c = (this.c + t) >>> 0;
    return t;
  }

  /** Integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor((this.next() / 0x1_0000_0000) * (max - min + 1));
  }

  /** True with probability p. */
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }

  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)]!;
  }

  bytes(n: number): Buffer {
    const out = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) out[i] = this.next() & 0xff;
    return out;
  }

  /** A length that is usually small, sometimes at a boundary protocol code gets wrong. */
  length(max = 300): number {
    if (this.chance(0.15)) return this.pick(BOUNDARY_LENGTHS.filter((n) => n <= Math.max(max, 0x10000)));
    return this.int(0, max);
  }
}

/** The seed of case `index` of a run seeded with `runSeed` (a 32-bit mix, so neighbouring cases differ everywhere). */
export function caseSeed(runSeed: number, index: number): number {
  let h = (runSeed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}
