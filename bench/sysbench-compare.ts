// Kept for existing habits: the OLTP comparison is now the "sysbench" suite of bench/run.ts, which
// takes the same flags (--time, --repeat, --threads, --tests, --table-size, --tiproxy-args).
process.argv.push('--suite', 'sysbench');
await import('./run.js');
