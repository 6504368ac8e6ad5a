// Reads a Prometheus text exposition (what /metrics serves) into samples tests can query.
import assert from 'node:assert/strict';

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export class Exposition {
  readonly samples: Sample[] = [];
  /** Metric family name -> TYPE. */
  readonly types = new Map<string, string>();

  constructor(readonly text: string) {
    for (const line of text.split('\n')) {
      if (line.startsWith('# TYPE ')) {
        const [, , name, type] = line.split(' ');
        this.types.set(name!, type!);
        continue;
      }
      if (line === '' || line.startsWith('#')) continue;
      const m = LINE.exec(line);
      assert.ok(m, `not an exposition line: ${line}`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      this.samples.push({ name: m[1]!, labels, value: Number(m[3]) });
    }
  }

  /** Samples of `name` whose labels include `match`. */
  find(name: string, match: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }

  /** Sum of the matching samples' values (0 when none). */
  sum(name: string, match: Record<string, string> = {}): number {
    return this.find(name, match).reduce((a, s) => a + s.value, 0);
  }

  /** Metric family names that have a TYPE line. */
  families(): Set<string> {
    return new Set(this.types.keys());
  }
}
