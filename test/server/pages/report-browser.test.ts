import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReportService } from '../../../src/server/governance/report/compute.js';
import { renderReport } from '../../../src/server/governance/report/render.js';
import { chromiumAvailable, launchChromium } from '../../support/chromium.js';
import { NOW, POLICY, seed } from '../../support/report-history.js';
import { migratedDatabase } from '../../support/store.js';

/**
 * The HTML report as the file people keep and mail around, opened in real headless Chromium from
 * disk with the network cut: it asks for nothing but itself, draws its charts (inline SVG, styled
 * by its one inline stylesheet under its own CSP), runs no script, and escapes names. With
 * JITCTL_UPDATE_SCREENSHOTS=1 it writes docs/images/report.png.
 */

let browser: Browser;
let dir: string;
let file: string;
beforeAll(async () => {
  if (!chromiumAvailable()) throw new Error('Chromium is needed: apt-get install chromium');
  const store = await migratedDatabase('sqlite');
  try {
    await seed(store.db);
    const report = await new ReportService({
      db: store.db,
      clock: { now: () => NOW },
      policy: POLICY,
      trustedIssuers: [],
      publicUrl: 'https://jit.example.com',
    }).compute({ since: '30d' });
    dir = mkdtempSync(join(tmpdir(), 'jitctl-report-'));
    file = join(dir, 'report.html');
    writeFileSync(file, renderReport(report, 'html').body);
  } finally {
    await store.close();
  }
  browser = await launchChromium();
});
afterAll(async () => {
  await browser?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('the HTML report file', () => {
  it('opens offline as one file: charts drawn, styles applied, nothing fetched, no script', async () => {
    const context = await browser.newContext({
      viewport: { width: 1100, height: 900 },
      offline: true,
      javaScriptEnabled: true,
    });
    const page = await context.newPage();
    const fetched: string[] = [];
    page.on('request', (r) => fetched.push(r.url()));
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`file://${file}`);
    expect(fetched).toEqual([`file://${file}`]);
    expect(errors).toEqual([]);
    expect(await page.locator('script').count()).toBe(0);
    expect(await page.locator('figure.chart svg').count()).toBe(4);
    expect(await page.locator('svg rect').count()).toBeGreaterThan(8);
    // The stylesheet applied: bars take their colour from the CSS classes.
    const fill = await page
      .locator('svg rect.c-approved')
      .first()
      .evaluate((el) => getComputedStyle(el).fill);
    expect(fill).toBe('rgb(31, 122, 61)');
    const text = await page.locator('main').innerText();
    expect(text).toContain('Alice and Lee approved each other');
    expect(text).toContain('Erin <img src=x onerror=alert(1)>');
    expect(await page.locator('main img').count()).toBe(0);
    if (process.env.JITCTL_UPDATE_SCREENSHOTS === '1')
      await page.screenshot({
        path: join(import.meta.dirname, '../../../docs/images/report.png'),
        fullPage: false,
      });
    await context.close();
  });
});
