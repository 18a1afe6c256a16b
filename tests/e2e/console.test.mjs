// The console in a real browser (issue 16): Debian's Chromium, headless, driven by
// playwright-core. tests/console_e2e.rs starts a gateway whose Shopify adapter is broken, with
// two real signed Shopify orders that dead-lettered (one for the adapter, one for its own bad
// quantities), and runs this file with:
//   CONSOLE_BASE   the gateway's base URL
//   CONSOLE_TOKEN  its API token
//   READ_TOKEN     its read-only token
//   ORDER_NUMBER   the Shopify order's number on the channel
//   CUSTOMER_EMAIL an e-mail address in the dead-lettered body (personal data)
//   ARTIFACTS      where screenshots go
//   ADAPTER_FILE   the gateway's Shopify adapter file, FIXED_ADAPTER the good one
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { chromium } from 'playwright-core';

const base = process.env.CONSOLE_BASE;
const token = process.env.CONSOLE_TOKEN;
const readToken = process.env.READ_TOKEN;
const orderNumber = process.env.ORDER_NUMBER;
const email = process.env.CUSTOMER_EMAIL;
const artifacts = process.env.ARTIFACTS;
mkdirSync(artifacts, { recursive: true });

const launch = () =>
  chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });

/// Every visible form control has a label (a <label for>, or an aria-label).
async function assertLabelled(page) {
  const unlabelled = await page.$$eval(
    'input:not([type=hidden]), select, textarea',
    (els) => els.filter((e) => e.labels.length === 0 && !e.getAttribute('aria-label')).map((e) => e.outerHTML),
  );
  assert.deepEqual(unlabelled, [], 'controls without a label');
}

async function shot(page, name) {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
}

test('ops log in, replay a dead letter after an adapter fix, discard another, and look the order up', async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const violations = [];
    // What the Content-Security-Policy refused (the deliberate wrong login's 401 is not one).
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) violations.push(m.text());
    });

    // The console asks for the token first; a wrong one is refused.
    await page.goto(`${base}/console`);
    assert.match(page.url(), /\/console\/login$/);
    await assertLabelled(page);
    await page.getByLabel('API token').fill('not-the-token');
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('alert').waitFor();
    await page.getByLabel('API token').fill(token);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const cookies = await page.context().cookies();
    const session = cookies.find((c) => c.name === 'crossgate_console');
    assert.ok(session.httpOnly, 'the session cookie is HttpOnly');
    assert.equal(session.sameSite, 'Strict');

    // Overview: the Shopify instance with two dead letters waiting.
    const shopRow = page.getByRole('row', { name: /^shop\b/ });
    await shopRow.waitFor();
    assert.match(await shopRow.innerText(), /shopify/);
    assert.equal((await shopRow.getByRole('link').innerText()).trim(), '2');
    // Its deliveries of the last hour, and the app's three orders.
    assert.match(await shopRow.innerText(), /2 dead_lettered/);
    assert.match(await page.getByRole('row', { name: /^app\b/ }).innerText(), /3 stored/);
    assert.equal(await page.locator('svg.bars').count(), await page.locator('tbody tr').count());
    // Channel health: neither instance is polled, fetched or rate-limited here.
    for (const column of ['Last poll', 'Fetch backlog', 'Rate-budget waits (1 h)', 'Reconciliation gaps']) {
      await page.getByRole('columnheader', { name: column }).waitFor();
    }
    await shot(page, 'overview');

    // The adapter's dead letter: its field error, and the raw body with personal data masked.
    await page.getByRole('link', { name: 'Dead letters', exact: true }).click();
    await page.getByLabel('Instance').selectOption('shop');
    // By kind: both are field errors, neither failed to parse.
    await page.getByLabel('Kind').selectOption('parse');
    await page.getByRole('button', { name: 'Filter' }).click();
    await page.getByText('No dead letters.').waitFor();
    await page.getByLabel('Kind').selectOption('fields');
    await page.getByLabel('From', { exact: true }).fill(new Date().toISOString().slice(0, 10));
    await page.getByRole('button', { name: 'Filter' }).click();
    await assertLabelled(page);
    // Replaying everything shown with the adapter as it is resolves nothing.
    await page.getByRole('button', { name: 'Replay all 2 shown with the current adapters' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /0 resolved .* 2 still failing/);
    // (the other one also has bad quantities)
    await page.getByRole('row').filter({ hasText: 'external_id' }).filter({ hasNotText: 'quantity' }).getByRole('link').click();
    await page.getByRole('heading', { name: 'Dead letter' }).waitFor();
    await assertLabelled(page);
    const errors = page.getByRole('table', { name: 'Field errors' });
    assert.match(await errors.innerText(), /external_id/);
    const masked = await page.locator('pre').innerText();
    assert.ok(!masked.includes(email), 'personal data is masked');
    assert.ok(masked.includes('•••'));
    await shot(page, 'dead-letter');

    // Revealing shows the body as sent.
    await page.getByRole('button', { name: 'Reveal personal data' }).click();
    assert.ok((await page.locator('pre').innerText()).includes(email));

    // Replaying with the adapter as it is: still failing, and the page says so.
    await page.getByRole('button', { name: 'Replay with the current adapter' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /still does not normalize/);

    // Ops fix the adapter file and reload it from the console; the replay now stores the order.
    const deadLetterPage = page.url().split('?')[0];
    await page.getByRole('link', { name: 'Adapters and rules', exact: true }).click();
    const digestBefore = await page.getByRole('row', { name: /^shopify/ }).innerText();
    copyFileSync(process.env.FIXED_ADAPTER, process.env.ADAPTER_FILE);
    await page.getByRole('button', { name: /^Reload/ }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /Reloaded/);
    assert.notEqual(await page.getByRole('row', { name: /^shopify/ }).innerText(), digestBefore, 'the new file is loaded');
    await shot(page, 'adapters');
    await page.goto(deadLetterPage);
    await page.getByRole('button', { name: 'Replay with the current adapter' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /records are stored/);

    // The other one cannot be fixed by the adapter: discarded, with a reason.
    await page.getByRole('row').filter({ hasText: 'quantity' }).getByRole('link').click();
    await page.getByLabel('Reason for discarding').fill('test order with a broken quantity; the channel resent it');
    await page.getByRole('button', { name: 'Discard', exact: true }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /Discarded/);
    await page.getByText('No dead letters.').waitFor();

    // The replayed order, by the channel's number: the canonical order with its lines.
    await page.getByRole('link', { name: 'Orders', exact: true }).click();
    await page.getByLabel('Order number or id').fill(orderNumber);
    await page.getByRole('button', { name: 'Look up' }).click();
    const orderId = (await page.locator('tbody tr a').first().innerText()).trim();
    await page.locator('tbody tr a').first().click();
    await page.getByRole('heading', { name: /^Order / }).waitFor();
    const text = await page.locator('main').innerText();
    assert.match(text, /598\.94 USD/);
    assert.match(text, /IPOD2008GREEN/);
    // Its timeline, oldest first, from the dates the order carries.
    const timeline = await page.$$eval('ol.timeline li time', (ts) => ts.map((t) => t.getAttribute('datetime')));
    assert.ok(timeline.length >= 2, JSON.stringify(timeline));
    assert.deepEqual([...timeline].sort((a, b) => Date.parse(a) - Date.parse(b)), timeline, 'oldest first');
    assert.match(await page.locator('ol.timeline').innerText(), /placed on shopify/);
    await shot(page, 'order');

    // The same order by its customer's e-mail (turned into the salted customer key).
    await page.getByRole('link', { name: 'Orders', exact: true }).click();
    await page.getByLabel(/customer email/).fill(email);
    await page.getByRole('button', { name: 'Look up' }).click();
    await page.getByRole('link', { name: orderId, exact: true }).waitFor();

    // The FX review for the period of the rates: per-pair totals as /v1/fx/report has them,
    // a chart per pair with the ECB series and the rates used, and the rows as CSV.
    const [from, to] = ['2017-01-01', '2017-03-03'];
    await page.getByRole('link', { name: 'FX review', exact: true }).click();
    await page.getByLabel('From', { exact: true }).fill(from);
    await page.getByLabel('To', { exact: true }).fill(to);
    await page.getByRole('button', { name: 'Show' }).click();
    await page.locator('#pair-totals').waitFor();
    await assertLabelled(page);
    const shown = await page.$$eval('#pair-totals tbody tr', (rows) =>
      rows.map((r) => [...r.cells].map((c) => c.innerText.trim())),
    );
    const report = await (
      await page.request.get(`${base}/v1/fx/report?from=${from}&to=${to}`, {
        headers: { Authorization: `Bearer ${token}` },
      })
    ).json();
    const expected = report.pairs.map((p) => [p.from, p.to, String(p.count), p.from_sum, p.to_sum, p.min_rate, p.max_rate]);
    assert.deepEqual(shown, expected, 'the page\'s totals are the API\'s');
    const charts = await page.$$eval('figure.chart svg', (svgs) =>
      svgs.map((s) => ({ series: Number(s.dataset.series), used: Number(s.dataset.used), points: s.querySelectorAll('circle.used').length })),
    );
    assert.ok(charts.length >= 3, `a chart per converted pair: ${JSON.stringify(charts)}`);
    for (const c of charts) {
      assert.ok(c.series >= 40, `about 43 ECB days in the period: ${JSON.stringify(c)}`);
      assert.ok(c.used >= 1 && c.points === c.used, JSON.stringify(c));
    }
    // Verifying the whole log is asked for (it recomputes every conversion).
    await page.getByRole('button', { name: 'Verify the whole log now' }).click();
    await page.getByRole('status').waitFor();
    assert.match(await page.getByRole('status').innerText(), /^Verified: \d+ entries/);
    assert.equal(await page.getByLabel('From', { exact: true }).inputValue(), from, 'the filter stays');
    await shot(page, 'fx-review');
    const rows = await page.locator('table:has(caption) tbody tr').count();
    const csvHref = await page.getByRole('link', { name: 'Download these rows as CSV' }).getAttribute('href');
    const csv = await (await page.request.get(`${base}${csvHref}`)).text();
    const csvRows = csv.trim().split('\n').length - 1;
    assert.equal(csvRows, rows, 'the CSV has exactly the rows shown');

    // A narrow screen: the pages still fit (tables scroll inside their box).
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${base}/console`);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the overview is ${overflow}px wider than a 375px screen`);
    await shot(page, 'overview-narrow');

    // A form without the session's CSRF token is refused.
    const forged = await page.request.post(`${base}/console/logout`, {
      form: { csrf: 'forged' },
      maxRedirects: 0,
    });
    assert.equal(forged.status(), 403);
    assert.deepEqual(violations, [], 'nothing on the pages broke the Content-Security-Policy');

    // Finance with the read-only token: every page reads, no action goes through.
    const reader = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await reader.goto(`${base}/console/login`);
    await reader.getByLabel('API token').fill(readToken);
    await reader.getByRole('button', { name: 'Log in' }).click();
    await reader.getByRole('heading', { name: 'Overview' }).waitFor();
    assert.match(await reader.locator('main').innerText(), /Read-only login/);
    await reader.getByRole('link', { name: 'FX review', exact: true }).click();
    await reader.locator('#pair-totals').waitFor();
    await reader.getByRole('button', { name: 'Verify the whole log now' }).click();
    await reader.getByRole('status').waitFor();
    assert.match(await reader.getByRole('status').innerText(), /^Verified/, 'verifying only reads');
    await reader.getByRole('link', { name: 'Adapters and rules', exact: true }).click();
    const [refused] = await Promise.all([
      reader.waitForResponse((r) => r.url().endsWith('/console/adapters/reload')),
      reader.getByRole('button', { name: /^Reload/ }).click(),
    ]);
    assert.equal(refused.status(), 403, 'a read-only login cannot reload');
    // And on /v1: it may GET, not POST.
    const auth = { Authorization: `Bearer ${readToken}` };
    assert.equal((await reader.request.get(`${base}/v1/dead-letters`, { headers: auth })).status(), 200);
    const post = await reader.request.post(`${base}/v1/jobs/run`, { headers: auth });
    assert.equal(post.status(), 403);
    assert.match((await post.json()).detail, /read-only token may only GET/);
  } finally {
    await browser.close();
  }
});
