import { renderTable } from './table.js';

/** Prints rows as JSON (an array, each row with its proxy) or as a table. */
export function printRows<R extends object>(json: boolean, rows: ReadonlyArray<{ proxy: string; row: R }>, header: readonly string[], cells: (row: R) => string[], anyAnswer = true): void {
  // Every proxy failed: only the errors (on stderr) are printed.
  if (!anyAnswer) return;
  if (json) {
    process.stdout.write(`${JSON.stringify(rows.map(({ proxy, row }) => ({ proxy, ...row })), null, 2)}\n`);
    return;
  }
  process.stdout.write(renderTable(['PROXY', ...header], rows.map(({ proxy, row }) => [proxy, ...cells(row)])));
}

/** "zone=a,rack=1", or "-". */
export function labelText(labels: Record<string, string>): string {
  const items = Object.entries(labels).map(([k, v]) => `${k}=${v}`);
  return items.length ? items.join(',') : '-';
}
