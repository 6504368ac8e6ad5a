/**
 * Free-text label values (veto reasons, "cannot move" reasons) with a cap on how many distinct ones a
 * metric gets: past the cap they count as "other", so a reason that embeds a name cannot grow the
 * series without bound.
 */
export class BoundedLabels {
  private readonly seen = new Set<string>();

  constructor(private readonly max: number) {}

  value(raw: string): string {
    if (this.seen.has(raw)) return raw;
    if (this.seen.size >= this.max) return 'other';
    this.seen.add(raw);
    return raw;
  }
}
