import { versionLine } from './arguments.js';

/** tiproxyctl: the operator's control tool (registrar and admin commands arrive with their issues). */
const [command] = process.argv.slice(2);
if (command === '-v' || command === '--version') {
  process.stdout.write(`${versionLine().replace(/^tiproxy/, 'tiproxyctl')}\n`);
} else {
  process.stderr.write('usage: tiproxyctl --version\n');
  process.exit(command ? 1 : 0);
}
