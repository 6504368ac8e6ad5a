/**
 * User/tenant name patterns in plugin configs: "app_*" matches any run of characters, "?" one
 * character, everything else literally (no regex surprises for operators).
 */
export function globToRegExp(glob: string): RegExp {
  let source = '';
  for (const ch of glob) {
    if (ch === '*') source += '.*';
    else if (ch === '?') source += '.';
    else source += ch.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  return new RegExp(`^${source}$`, 's');
}
