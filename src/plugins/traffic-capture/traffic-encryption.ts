import { createCipheriv, createDecipheriv, randomBytes, type CipherGCM } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** Encrypted capture files: MAGIC, a 12-byte IV, the AES-256-GCM ciphertext, the 16-byte auth tag. */
const MAGIC = Buffer.from('TPXTRAF1');
const IV_LENGTH = 12;
const TAG_LENGTH = 16;

/** Reads a 32-byte key from a file: raw bytes, or 64 hex characters (a trailing newline allowed). */
export function readKeyFile(file: string): Buffer {
  let raw: Buffer;
  try {
    raw = readFileSync(file);
  } catch (err) {
    throw new Error(`cannot read the encryption key file ${file}: ${(err as Error).message}`);
  }
  if (raw.length === 32) return raw;
  const text = raw.toString('latin1').trim();
  if (/^[0-9a-fA-F]{64}$/.test(text)) return Buffer.from(text, 'hex');
  throw new Error(`encryption key file ${file} must hold 32 bytes or 64 hex characters (AES-256), it holds ${raw.length} bytes`);
}

/** A cipher for one file and the header to write before its output. */
export function fileCipher(key: Buffer): { header: Buffer; cipher: CipherGCM } {
  const iv = randomBytes(IV_LENGTH);
  return { header: Buffer.concat([MAGIC, iv]), cipher: createCipheriv('aes-256-gcm', key, iv) };
}

export function isEncrypted(file: Buffer): boolean {
  return file.length >= MAGIC.length && file.subarray(0, MAGIC.length).equals(MAGIC);
}

/** Decrypts a whole encrypted file; a wrong key or a damaged file fails with a clear error. */
export function decryptFile(file: Buffer, key: Buffer | null, name: string): Buffer {
  if (!key) throw new Error(`${name} is encrypted: give the key file (--encryption-key-file)`);
  if (file.length < MAGIC.length + IV_LENGTH + TAG_LENGTH) throw new Error(`${name} is too short to be an encrypted capture file`);
  const iv = file.subarray(MAGIC.length, MAGIC.length + IV_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', key, iv);
  decipher.setAuthTag(file.subarray(file.length - TAG_LENGTH));
  try {
    return Buffer.concat([decipher.update(file.subarray(MAGIC.length + IV_LENGTH, file.length - TAG_LENGTH)), decipher.final()]);
  } catch {
    throw new Error(`${name} cannot be decrypted: wrong key, or the file is damaged or incomplete`);
  }
}
