// Checks the etcd harness against observable facts: real etcd 3.4 processes (plain and TLS with client
// certificates), the etcd3 npm client, stop/start on the same ports and data.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';
import { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdInstance } from '../../local-cluster/etcd.js';

describe('etcd harness', () => {
  const started: EtcdInstance[] = [];
  after(async () => {
    for (const e of started) await e.destroy();
  });

  test('a plain instance keeps its data across stop/start on the same port', async () => {
    const etcd = await startEtcd({ name: 'harness' });
    started.push(etcd);
    const client = new Etcd3({ hosts: etcd.url });
    try {
      await client.put('k').value('v1');
      const pid = etcd.pid;
      await etcd.stop();
      assert.equal(etcd.running(), false);
      assert.equal(etcd.pid, -1);
      await etcd.start();
      assert.notEqual(etcd.pid, pid);
      assert.equal(await client.get('k').string(), 'v1');
    } finally {
      client.close();
    }
  });

  test('a TLS instance requires the test client certificate', async () => {
    const etcd = await startEtcd({ name: 'harness-tls', tls: true });
    started.push(etcd);
    assert.match(etcd.url, /^https:/);
    const tls = etcd.tls!;
    const client = new Etcd3({
      hosts: etcd.url,
      credentials: { rootCertificate: readFileSync(tls.ca), certChain: readFileSync(tls.cert), privateKey: readFileSync(tls.key) },
    });
    try {
      await client.put('k').value('secure');
      assert.equal(await client.get('k').string(), 'secure');
    } finally {
      client.close();
    }
  });
});
