// `./scripts/playground.sh scale-out` and `scale-in [ADDR]`: run beside a running playground (found by
// its state file), they ask it to add a Galera node, or to deregister one, wait until the proxy has
// moved every session off it, and remove it.
import { countSessions } from './backend-sessions.js';
import { callControl } from './control.js';
import { readRunningState, type PlaygroundBackend } from './state.js';

export async function scaleOut(dir: string): Promise<void> {
  const state = readRunningState(dir);
  process.stdout.write('scale-out: starting a new Galera node (it joins by state transfer; this takes a few seconds)\n');
  const added = await callControl<PlaygroundBackend>(state.control, 'POST', '/backends');
  process.stdout.write(`scale-out: ${added.addr} (node${added.node}) joined the cluster and is registered in etcd ${state.etcd}\n`);
}

export interface ScaleInOptions {
  /** The backend to remove; default the newest one. */
  addr?: string;
  /** Seconds to wait for its sessions to leave. */
  timeoutSeconds: number;
}

export async function scaleIn(dir: string, o: ScaleInOptions): Promise<void> {
  const state = readRunningState(dir);
  const addr = o.addr ?? state.backends.at(-1)?.addr;
  if (!addr) throw new Error('the playground has no backend to scale in');
  if (!state.backends.some((b) => b.addr === addr)) {
    throw new Error(`${addr} is not a playground backend (backends: ${state.backends.map((b) => b.addr).join(', ')})`);
  }

  await callControl<PlaygroundBackend>(state.control, 'POST', `/backends/${encodeURIComponent(addr)}/deregister`);
  process.stdout.write(`scale-in: ${addr} deregistered from etcd; waiting until it has no sessions\n`);

  const deadline = Date.now() + o.timeoutSeconds * 1000;
  let last = -1;
  let warned = false;
  for (;;) {
    const count = await countSessions(state.api, addr, state.user, state.password);
    if (count.apiProblem && !warned) {
      warned = true;
      process.stdout.write(`scale-in: ${count.apiProblem}; counting the client connections on ${addr} itself instead\n`);
    }
    if (count.sessions !== last) {
      last = count.sessions;
      process.stdout.write(`scale-in: ${addr} has ${count.sessions} session${count.sessions === 1 ? '' : 's'} left (${count.source === 'api' ? "the proxy's admin API" : 'client connections on the node'})\n`);
    }
    if (count.sessions === 0) break;
    if (Date.now() > deadline) {
      const stuck = (count.viaProxy ?? []).map((x) => `\n  session ${x.id} (${x.user}): ${x.not_migratable_reason ?? 'waiting for its next safe point'}`).join('');
      throw new Error(`${addr} still has ${count.sessions} session(s) after ${o.timeoutSeconds} s${stuck || ' (sessions holding temporary tables, locks or an open transaction cannot move; see the proxy\'s "migration vetoed" log lines)'}\n`
        + 'It stays deregistered and running: run scale-in again to keep waiting.');
    }
    await new Promise((r) => setTimeout(r, 250));
  }

  await callControl(state.control, 'DELETE', `/backends/${encodeURIComponent(addr)}`);
  process.stdout.write(`scale-in: ${addr} is empty, stopped and removed from the cluster\n`);
}
