// Unit tests: no real components. (The end-to-end check against MariaDB's ed25519 plugin, with a
// password that is not 32 bytes long, is in test/plugins/credentials-cleartext.)
import assert from 'node:assert/strict';
import { createPrivateKey, createPublicKey, randomBytes, sign, verify } from 'node:crypto';
import { describe, it } from 'node:test';
import { ed25519Sign } from '../../../src/kernel/auth/ed25519.js';

const PKCS8_ED25519_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

describe('ed25519 signing from a password', () => {
  it('matches node:crypto for 32-byte secrets (where RFC 8032 seeds and MariaDB passwords coincide)', () => {
    for (let i = 0; i < 4; i++) {
      const seed = randomBytes(32);
      const message = randomBytes(32);
      const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
      assert.deepEqual(ed25519Sign(seed, message), sign(null, message, key));
    }
  });

  it('gives a different, deterministic signature per password and message', () => {
    const m = Buffer.from('nonce');
    assert.deepEqual(ed25519Sign(Buffer.from('pw'), m), ed25519Sign(Buffer.from('pw'), m));
    assert.notDeepEqual(ed25519Sign(Buffer.from('pw'), m), ed25519Sign(Buffer.from('pw2'), m));
    assert.notDeepEqual(ed25519Sign(Buffer.from('pw'), m), ed25519Sign(Buffer.from('pw'), Buffer.from('nonce2')));
    assert.equal(ed25519Sign(Buffer.from('pw'), m).length, 64);
  });

  it('produces signatures node:crypto verifies under the matching public key', () => {
    const seed = randomBytes(32);
    const key = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519_PREFIX, seed]), format: 'der', type: 'pkcs8' });
    const message = Buffer.from('verify me');
    assert.equal(verify(null, message, createPublicKey(key), ed25519Sign(seed, message)), true);
  });
});
