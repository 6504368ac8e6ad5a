// Debian's chromium, headless, driven by playwright-core (no browser download: the system binary).
import { execFileSync } from 'node:child_process';
import { chromium, type Browser } from 'playwright-core';

/** The chromium binary on PATH (scripts/install-deps.sh installs Debian's `chromium`). */
export function chromiumPath(): string {
  try {
    return execFileSync('sh', ['-c', 'command -v chromium || command -v chromium-browser'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('chromium is not installed: run scripts/install-deps.sh (Debian package chromium)');
  }
}

export async function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    // Chromium refuses its sandbox as root (tests run as root in CI); /dev/shm may be small in containers.
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
    timeout: 30_000,
  });
}
