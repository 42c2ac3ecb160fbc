// Headless Chromium (Debian's `chromium`, installed by scripts/install-tools.sh) driven by
// playwright-core, for tests of the pages the services serve. Closed at teardown.
import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';
import type { Teardown } from './backends.ts';

export const CHROMIUM = process.env.ZEDGE_CHROMIUM ?? '/usr/bin/chromium';

export async function launchChromium(t: Teardown): Promise<Browser> {
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM}: run scripts/install-tools.sh (Debian's chromium)`);
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}
