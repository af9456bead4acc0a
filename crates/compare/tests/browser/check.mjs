// Opens ragtune-compare's HTML report in headless Chromium and checks that it really renders:
// no console errors or page errors, no request leaves file://, every SVG plot has a non-zero
// size, the recommendation is visible, and the given texts appear on the page. Saves a
// full-page screenshot.
//
//   node check.mjs REPORT.html SHOT.png MIN_PLOTS RECOMMENDATION_TEXT [TEXT...]
//
import { launchChromium } from './launch.mjs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const [htmlPath, pngPath, minPlots, recommendation, ...texts] = process.argv.slice(2);
if (!htmlPath || !pngPath || !minPlots || !recommendation) {
  console.error('usage: node check.mjs REPORT.html SHOT.png MIN_PLOTS RECOMMENDATION_TEXT [TEXT...]');
  process.exit(2);
}

const problems = [];
const { page, close } = await launchChromium();
try {
  page.on('console', (msg) => {
    if (msg.type() === 'error') problems.push(`console error: ${msg.text()}`);
  });
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('request', (req) => {
    if (!req.url().startsWith('file://')) problems.push(`request leaves the page: ${req.url()}`);
  });
  page.on('requestfailed', (req) => problems.push(`request failed: ${req.url()}`));

  const url = pathToFileURL(path.resolve(htmlPath)).href;
  const response = await page.goto(url, { waitUntil: 'load', timeout: 30000 });
  if (!response || !response.ok()) problems.push(`loading ${url} failed`);

  const plots = await page.$$eval('svg.plot', (svgs) =>
    svgs.map((s) => {
      const r = s.getBoundingClientRect();
      return { label: s.getAttribute('aria-label'), width: r.width, height: r.height,
               shapes: s.querySelectorAll('rect, circle, polyline, line').length };
    }),
  );
  if (plots.length < Number(minPlots)) problems.push(`${plots.length} SVG plots, expected at least ${minPlots}`);
  for (const p of plots) {
    if (!(p.width > 0 && p.height > 0)) problems.push(`plot "${p.label}" has size ${p.width}x${p.height}`);
    if (p.shapes === 0) problems.push(`plot "${p.label}" draws nothing`);
  }

  const rec = page.locator('#recommendation p').first();
  if (!(await rec.isVisible())) problems.push('the recommendation is not visible');
  const recText = (await rec.textContent()) ?? '';
  if (!recText.includes(recommendation)) problems.push(`the recommendation reads "${recText}", expected "${recommendation}"`);

  const body = (await page.locator('body').textContent()) ?? '';
  for (const t of texts) {
    if (!body.includes(t)) problems.push(`the page does not show the text ${JSON.stringify(t)}`);
  }

  await page.screenshot({ path: pngPath, fullPage: true });
  console.log(JSON.stringify({ plots, recommendation: recText }, null, 1));
} finally {
  await close();
}

if (problems.length > 0) {
  for (const p of problems) console.error(p);
  process.exit(1);
}
