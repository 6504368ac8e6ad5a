/**
 * zstd for capture files where the runtime has it: Node's zlib gained zstd in 22.15 / 23.8; Node 20 has
 * none. Looked up at run time (the typings this project builds against are Node 20's), so one build
 * captures and replays zstd on a newer Node and refuses it with the reason on an older one.
 */
import * as zlib from 'node:zlib';

interface ZstdFunctions {
  zstdCompressSync(data: Buffer): Buffer;
  zstdDecompressSync(data: Buffer, options?: { finishFlush?: number }): Buffer;
}

const runtime = zlib as unknown as Partial<ZstdFunctions>;
/** zlib.constants.ZSTD_e_flush: a file cut short (a killed proxy) still yields what it holds. */
const ZSTD_E_FLUSH = (zlib.constants as unknown as Record<string, number | undefined>)['ZSTD_e_flush'] ?? 1;

/** The first Node versions with zstd in zlib, for messages. */
export const ZSTD_NODE_VERSIONS = 'Node 22.15 or later (or 23.8+)';

export function zstdAvailable(): boolean {
  return typeof runtime.zstdCompressSync === 'function' && typeof runtime.zstdDecompressSync === 'function';
}

/** Why zstd cannot be used here, naming the Node version needed. */
export function zstdUnavailable(what: string): string {
  return `${what} needs zstd, which this Node (${process.version}) lacks: it needs ${ZSTD_NODE_VERSIONS}`;
}

/** One zstd frame (concatenated frames decompress as one stream, like gzip members). */
export function zstdCompress(data: Buffer): Buffer {
  if (!runtime.zstdCompressSync) throw new Error(zstdUnavailable('zstd compression'));
  return runtime.zstdCompressSync(data);
}

export function zstdDecompress(data: Buffer): Buffer {
  if (!runtime.zstdDecompressSync) throw new Error(zstdUnavailable('zstd decompression'));
  return runtime.zstdDecompressSync(data, { finishFlush: ZSTD_E_FLUSH });
}
