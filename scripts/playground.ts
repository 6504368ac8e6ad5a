// The playground behind scripts/playground.sh, like `tiup playground`:
//   playground.sh [--backends N] [--port P] [--api-port P]   start it (foreground; Ctrl-C stops it)
//   playground.sh scale-out                                   add a backend to the running playground
//   playground.sh scale-in [ADDR] [--timeout S]               drain a backend, wait until empty, remove it
// --dir DIR (default .tmp/playground) holds its state file, so the scale commands find it.
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { runPlayground } from './playground/run-playground.js';
import { scaleIn, scaleOut } from './playground/scale.js';
import { DEFAULT_PLAYGROUND_DIR } from './playground/state.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    port: { type: 'string', default: '6000' },
    'api-port': { type: 'string', default: '3080' },
    backends: { type: 'string', default: '3' },
    timeout: { type: 'string', default: '120' },
    dir: { type: 'string', default: DEFAULT_PLAYGROUND_DIR },
  },
});

function positiveInt(name: string, raw: string, max = 65535): number {
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new Error(`--${name} must be an integer from 1 to ${max}, got "${raw}"`);
  return n;
}

const [command, ...rest] = positionals;
values.dir = resolve(values.dir);
try {
  if (command === 'scale-out' && rest.length === 0) {
    await scaleOut(values.dir);
  } else if (command === 'scale-in' && rest.length <= 1) {
    await scaleIn(values.dir, { ...(rest[0] ? { addr: rest[0] } : {}), timeoutSeconds: positiveInt('timeout', values.timeout, 86_400) });
  } else if (command === undefined) {
    await runPlayground({
      dir: values.dir,
      sqlPort: positiveInt('port', values.port),
      apiPort: positiveInt('api-port', values['api-port']),
      backends: positiveInt('backends', values.backends, 9),
    });
  } else {
    throw new Error(`unknown command "${positionals.join(' ')}": use no command (start), scale-out, or scale-in [ADDR]`);
  }
} catch (err) {
  process.stderr.write(`playground: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
