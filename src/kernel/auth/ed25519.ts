import { createHash } from 'node:crypto';

/*
 * Ed25519 signing as MariaDB's client_ed25519 does it: the secret is the password itself, of any
 * length, hashed with SHA-512 where RFC 8032 hashes a 32-byte seed. node:crypto only accepts 32-byte
 * seeds, hence this small implementation (BigInt, extended twisted-Edwards coordinates). It runs once
 * per proxy-side login, so clarity beats speed; a signature costs about 10 ms.
 */

const P = 2n ** 255n - 19n;
const L = 2n ** 252n + 27742317777372353535851937790883648493n;
const D = mod(-121665n * inverse(121666n));
const BASE: Point = {
  x: 15112221349535400772501151409588531511454012693041857206046113283949847762202n,
  y: 46316835694926478169428394003475163141307993866256225615783033603165251855960n,
  z: 1n,
  t: mod(15112221349535400772501151409588531511454012693041857206046113283949847762202n
    * 46316835694926478169428394003475163141307993866256225615783033603165251855960n),
};

interface Point { x: bigint; y: bigint; z: bigint; t: bigint }

function mod(a: bigint, m = P): bigint {
  const r = a % m;
  return r >= 0n ? r : r + m;
}

function power(base: bigint, exp: bigint): bigint {
  let result = 1n;
  let b = mod(base);
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) result = mod(result * b);
    b = mod(b * b);
  }
  return result;
}

function inverse(a: bigint): bigint {
  return power(a, P - 2n);
}

// Unified addition for a = -1 (add-2008-hwcd-3): also correct for doubling.
function add(p: Point, q: Point): Point {
  const a = mod((p.y - p.x) * (q.y - q.x));
  const b = mod((p.y + p.x) * (q.y + q.x));
  const c = mod(p.t * 2n * D * q.t);
  const d = mod(p.z * 2n * q.z);
  const e = b - a;
  const f = d - c;
  const g = d + c;
  const h = b + a;
  return { x: mod(e * f), y: mod(g * h), z: mod(f * g), t: mod(e * h) };
}

function multiply(point: Point, scalar: bigint): Point {
  let result: Point = { x: 0n, y: 1n, z: 1n, t: 0n };
  let addend = point;
  for (let k = scalar; k > 0n; k >>= 1n) {
    if (k & 1n) result = add(result, addend);
    addend = add(addend, addend);
  }
  return result;
}

function encode(point: Point): Buffer {
  const zInv = inverse(point.z);
  const x = mod(point.x * zInv);
  const y = mod(point.y * zInv);
  const out = littleEndian(y);
  if (x & 1n) out[31]! |= 0x80;
  return out;
}

function littleEndian(n: bigint): Buffer {
  const out = Buffer.alloc(32);
  let v = n;
  for (let i = 0; i < 32; i++, v >>= 8n) out[i] = Number(v & 0xffn);
  return out;
}

function fromLittleEndian(buf: Buffer): bigint {
  let n = 0n;
  for (let i = buf.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(buf[i]!);
  return n;
}

function sha512(...parts: Buffer[]): Buffer {
  const h = createHash('sha512');
  for (const p of parts) h.update(p);
  return h.digest();
}

/** The 64-byte Ed25519 signature of `message` under the key derived from `secret` (SHA-512, clamped). */
export function ed25519Sign(secret: Buffer, message: Buffer): Buffer {
  const az = sha512(secret);
  az[0]! &= 248;
  az[31]! &= 63;
  az[31]! |= 64;
  const a = fromLittleEndian(az.subarray(0, 32));
  const publicKey = encode(multiply(BASE, a));
  const r = mod(fromLittleEndian(sha512(az.subarray(32, 64), message)), L);
  const rEncoded = encode(multiply(BASE, r));
  const h = mod(fromLittleEndian(sha512(rEncoded, publicKey, message)), L);
  const s = mod(r + h * a, L);
  return Buffer.concat([rEncoded, littleEndian(s)]);
}
