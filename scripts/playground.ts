// The playground behind scripts/playground.sh, like `tiup playground`: an etcd (the PD of a TiDB
// cluster), MariaDB backends that announce themselves there with `tiproxyctl register`, and the real
// tiproxy CLI discovering them through etcd, in the foreground.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { startEtcd } from '../local-cluster/etcd.js';
import { startMariaDBs, ROOT_PASSWORD, ROOT_USER } from '../local-cluster/mariadb.js';
import { startRegistrar } from '../local-cluster/registrar.js';
import { repoRoot, tmpRoot } from '../local-cluster/paths.js';
import { spawnTracked } from '../local-cluster/processes.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '6000' },
    backends: { type: 'string', default: '2' },
    'api-port': { type: 'string', default: '3080' },
  },
});
const dir = join(tmpRoot, 'playground');
mkdirSync(dir, { recursive: true });

const etcd = await startEtcd({ name: 'playground' });
const dbs = await startMariaDBs(Number(values.backends), { name: 'playground' });
// Each backend announces itself the TiDB way (info + ttl keys under /topology/tidb, kept alive by a lease).
const registrars = dbs.map((d, i) => startRegistrar(
  ['--pd-addrs', etcd.endpoint, '--addr', `127.0.0.1:${d.port}`, '--labels', `zone=zone-${String.fromCharCode(97 + i)}`],
  { built: true },
));
await Promise.all(registrars.map((r) => r.registered()));
const configPath = join(dir, 'proxy.yaml');
writeFileSync(configPath, [
  '# Written by scripts/playground.ts; edit it and the running proxy reloads (or send SIGHUP).',
  'proxy:',
  `  addr: "127.0.0.1:${values.port}"`,
  `  pd-addrs: "${etcd.endpoint}"`,
  'api:',
  `  addr: "127.0.0.1:${values['api-port']}"`,
  'log:',
  '  level: info',
  'plugins:',
  '  - name: discovery-etcd',
  '  - name: health',
  '  - name: balance',
  '  - name: tls-policy',
  '',
].join('\n'));

const proxy = spawnTracked(process.execPath, [join(repoRoot, 'bin/tiproxy'), '--config', configPath], { stdio: ['ignore', 'inherit', 'inherit'] });
const stop = async () => {
  proxy.kill('SIGTERM');
  await new Promise((r) => proxy.once('exit', r));
  await Promise.all(registrars.map((r) => r.stop('SIGTERM')));
  await Promise.all(dbs.map((d) => d.stop()));
  await etcd.stop();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
proxy.once('exit', (code) => {
  process.stderr.write(`tiproxy exited with ${code}\n`);
  void Promise.all([...registrars.map((r) => r.stop('SIGTERM')), ...dbs.map((d) => d.stop())])
    .then(() => etcd.stop()).then(() => process.exit(code ?? 1));
});

setTimeout(() => {
  process.stdout.write([
    '',
    'tiproxy playground is up:',
    `  etcd:      ${etcd.endpoint}   (backends registered under /topology/tidb/)`,
    ...dbs.map((d, i) => `  backend ${i + 1}: MariaDB on 127.0.0.1:${d.port} (zone-${String.fromCharCode(97 + i)}), registered by tiproxyctl register`),
    `  proxy:     127.0.0.1:${values.port}   (config: ${configPath})`,
    '',
    'Connect with:',
    `  mariadb -h127.0.0.1 -P${values.port} -u${ROOT_USER} -p${ROOT_PASSWORD}`,
    `  mysql -h127.0.0.1 -P${values.port} -u${ROOT_USER} -p${ROOT_PASSWORD}`,
    '',
    'Ctrl-C stops the proxy and the backends.',
    '',
  ].join('\n'));
}, 1500);
