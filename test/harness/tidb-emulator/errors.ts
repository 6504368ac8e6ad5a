// Server errors the emulator answers with: MySQL's numbers and SQLSTATEs (TiDB uses the same ones),
// plus TiDB's own 8146. Kept here rather than in src/kernel/protocol/constants.ts because the proxy
// never sends these itself; only the 8146 the migrate plugin reacts to is also named there.
import { ER_TIDB_CANNOT_MIGRATE_SESSION } from '../../../src/kernel/protocol/constants.js';

export const ER_ACCESS_DENIED = { code: 1045, sqlState: '28000' } as const;
export const ER_NO_DB = { code: 1046, sqlState: '3D000' } as const;
export const ER_BAD_DB = { code: 1049, sqlState: '42000' } as const;
export const ER_BAD_FIELD = { code: 1054, sqlState: '42S22' } as const;
export const ER_DUP_ENTRY = { code: 1062, sqlState: '23000' } as const;
export const ER_PARSE = { code: 1064, sqlState: '42000' } as const;
export const ER_NO_SUCH_TABLE = { code: 1146, sqlState: '42S02' } as const;
export const ER_UNKNOWN_SYSTEM_VARIABLE = { code: 1193, sqlState: 'HY000' } as const;
export const ER_WRONG_ARGUMENTS = { code: 1210, sqlState: 'HY000' } as const;
export const ER_WRONG_VALUE_FOR_VAR = { code: 1231, sqlState: '42000' } as const;
export const ER_UNKNOWN_STMT_HANDLER = { code: 1243, sqlState: 'HY000' } as const;
export const ER_UNKNOWN_COM = { code: 1047, sqlState: '08S01' } as const;
export const ER_CANNOT_MIGRATE_SESSION = { code: ER_TIDB_CANNOT_MIGRATE_SESSION, sqlState: 'HY000' } as const;

/** An error the emulator reports to the client as an ERR packet (the connection stays usable). */
export class SqlError extends Error {
  constructor(readonly kind: { code: number; sqlState: string }, message: string) {
    super(message);
    this.name = 'SqlError';
  }

  get code(): number {
    return this.kind.code;
  }
}

/** TiDB's ErrCannotMigrateSession text: "cannot migrate the current session: <why>". */
export function cannotMigrate(why: string): SqlError {
  return new SqlError(ER_CANNOT_MIGRATE_SESSION, `cannot migrate the current session: ${why}`);
}
