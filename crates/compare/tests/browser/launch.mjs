// Debian's Chromium under playwright-core, headless, with the flags this machine needs (its
// network is closed: background networking would fail at every start). Shared by the browser
// checks of the compare report (check.mjs) and of the server's web UI
// (crates/serve/tests/browser/ui.mjs); playwright-core is installed here by scripts/deps.
//
// Chromium is RAGTUNE_CHROMIUM, default /usr/bin/chromium: `npx playwright install` cannot
// download browsers here.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// A persistent context in a fresh profile folder; `close()` closes it and removes the folder.
export async function launchChromium() {
  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'ragtune-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: process.env.RAGTUNE_CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 900 },
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
  const page = context.pages()[0] ?? (await context.newPage());
  const close = async () => {
    await context.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  };
  return { page, close };
}
