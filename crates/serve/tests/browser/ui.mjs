// Drives the web UI of a running `ragtune serve` in headless Chromium, as a person would:
// upload a document, watch its ingestion finish, ask a question, click a citation, and check
// that the cited passage opens with the evidence highlighted. Fails on any console error, page
// error, or request to another origin. Saves a screenshot.
//
//   node ui.mjs BASE_URL SHOT.png QUESTION EVIDENCE
//
// Chromium and playwright-core come through the compare report's browser check
// (crates/compare/tests/browser/launch.mjs), where scripts/deps installs playwright-core.
import { launchChromium } from '../../../compare/tests/browser/launch.mjs';

const [base, shot, question, evidence] = process.argv.slice(2);
if (!base || !shot || !question || !evidence) {
  console.error('usage: node ui.mjs BASE_URL SHOT.png QUESTION EVIDENCE');
  process.exit(2);
}
const origin = new URL(base).origin;
const problems = [];
const { page, close } = await launchChromium();
const step = async (what, run) => {
  try {
    await run();
  } catch (e) {
    problems.push(`${what}: ${e.message.split('\n')[0]}`);
    throw e;
  }
};
try {
  page.setDefaultTimeout(30000);
  page.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${r.status()} for ${r.url()}`); });
  page.on('request', (r) => {
    if (!r.url().startsWith(origin) && !r.url().startsWith('blob:')) problems.push(`request leaves the server: ${r.url()}`);
  });

  await step('open the page', async () => {
    const response = await page.goto(base, { waitUntil: 'load' });
    if (!response || !response.ok()) throw new Error(`loading ${base} failed`);
    await page.waitForFunction(() => document.querySelector('#model').options.length > 0);
  });
  await step('upload a document and watch it ingest', async () => {
    await page.setInputFiles('#file', {
      name: 'parking.md',
      mimeType: 'text/markdown',
      buffer: Buffer.from('# Parking\n\nVisitors park in the zeppelin hangar behind building C.\n'),
    });
    await page.click('#upload');
    await page.waitForFunction(() => /^idle: /.test(document.querySelector('#status').textContent)
      && [...document.querySelectorAll('#documents td')].some((td) => td.textContent === 'parking.md'));
    const progress = await page.$eval('#progress', (p) => p.value === p.max);
    if (!progress) throw new Error('the progress bar is not full once the ingestion is idle');
  });
  await step('ask and get a cited answer', async () => {
    await page.selectOption('#model', 'rag/docs');
    await page.fill('#question', question);
    await page.click('#send');
    await page.waitForSelector('.turn.assistant button.cite');
  });
  await step('click the citation and see the evidence highlighted', async () => {
    await page.click('.turn.assistant button.cite');
    await page.waitForSelector('#passage:not([hidden]) mark');
    const marked = await page.$eval('#passage-text mark', (m) => m.textContent);
    if (marked !== evidence) throw new Error(`highlighted ${JSON.stringify(marked)}, wanted ${JSON.stringify(evidence)}`);
    const where = await page.$eval('#passage-where', (w) => w.textContent);
    if (!where.includes('citation checked')) throw new Error(`the passage header says ${JSON.stringify(where)}`);
  });
  await page.screenshot({ path: shot, fullPage: true });
} catch {
  // Recorded by `step`.
} finally {
  await close();
}
if (problems.length) {
  console.log(problems.join('\n'));
  process.exit(1);
}
console.log('ok');
