// bull-board at /admin/queues: behind its own credential, and showing every lane in a real browser.
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { laneStateKeys } from '@bullpen/core';
import { startTestApi, type TestApi } from '../apps/api/test/harness';
import { waitUntil } from './support/wait';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'admin-ui-password-1';
const BASIC = `Basic ${Buffer.from(`admin:${PASSWORD}`).toString('base64')}`;
const BROWSER_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('the admin UI', () => {
  let api: TestApi;
  let browser: Browser | undefined;

  beforeAll(async () => {
    api = await startTestApi({ env: { ADMIN_UI_PASSWORD: PASSWORD } });
  });
  afterAll(async () => {
    await browser?.close();
    await api.stop();
  });

  async function launch(): Promise<Browser> {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    browser ??= await chromium.launch({ executablePath: CHROMIUM, args: BROWSER_ARGS });
    return browser;
  }

  const paused = async (lane: string) => (await api.redis.hget(laneStateKeys(api.config.prefix, lane).meta, 'paused')) === '1';

  it('is not mounted unless a password is configured', async () => {
    const closed = await startTestApi();
    try {
      const res = await fetch(`${closed.url}/admin/queues`);
      expect(res.status).toBe(404);
    } finally {
      await closed.stop();
    }
  });

  it('asks for credentials and refuses API keys and wrong passwords', async () => {
    expect((await fetch(`${api.url}/admin/queues`)).status).toBe(401);
    const wrong = Buffer.from('admin:not-the-password').toString('base64');
    expect((await fetch(`${api.url}/admin/queues`, { headers: { authorization: `Basic ${wrong}` } })).status).toBe(401);
    const bearer = await fetch(`${api.url}/admin/queues`, { headers: { authorization: 'Bearer acme-secret-key-1' } });
    expect(bearer.status).toBe(401);
  });

  it('lists every lane in headless Chromium', async () => {
    const context = await (await launch()).newContext({ httpCredentials: { username: 'admin', password: PASSWORD } });
    const page = await context.newPage();
    await page.goto(`${api.url}/admin/queues`);
    for (const lane of api.config.laneNames) {
      await page.getByText(lane, { exact: true }).first().waitFor({ timeout: 20_000 });
    }
    await context.close();
  });

  it('refuses with 403 a change sent as a form, without a body, or from another site, and changes nothing', async () => {
    const lane = 'tool_call';
    const add = `${api.url}/admin/queues/api/queues/${lane}/add`;
    const pause = `${api.url}/admin/queues/api/queues/${lane}/pause`;
    const json = JSON.stringify({ name: 'csrf', data: {} });
    const own = new URL(api.url).origin;
    const cases: [string, string, Record<string, string>, string | undefined][] = [
      ['POST', add, { 'content-type': 'text/plain' }, json],
      ['POST', add, { 'content-type': 'application/x-www-form-urlencoded' }, `${json}=`],
      ['POST', add, { 'content-type': 'multipart/form-data; boundary=x' }, `--x\r\nContent-Disposition: form-data; name="name"\r\n\r\ncsrf\r\n--x--\r\n`],
      ['POST', add, {}, undefined],
      ['POST', add, { 'content-type': 'application/json', 'sec-fetch-site': 'cross-site', origin: own }, json],
      ['POST', add, { 'content-type': 'application/json', 'sec-fetch-site': 'same-site' }, json],
      ['POST', add, { 'content-type': 'application/json', origin: 'http://attacker.example' }, json],
      ['POST', add, { 'content-type': 'application/json', origin: 'null' }, json],
      ['PUT', pause, { 'sec-fetch-site': 'cross-site' }, undefined],
      ['PUT', pause, { 'content-type': 'text/plain' }, '{}'],
    ];
    for (const [method, url, headers, body] of cases) {
      const res = await fetch(url, { method, headers: { authorization: BASIC, ...headers }, ...(body !== undefined ? { body } : {}) });
      const problem = (await res.json()) as { code?: string };
      expect([method, url, headers, res.status, res.headers.get('content-type'), problem.code]).toEqual([
        method,
        url,
        headers,
        403,
        'application/problem+json; charset=utf-8',
        'cross_site_request',
      ]);
    }
    expect(await api.backlog(lane)).toBe(0);
    expect(await paused(lane)).toBe(false);

    // JSON from the UI's own page, or from a client that is no browser, is taken.
    const browserless: Record<string, string> = {};
    for (const headers of [{ origin: own, 'sec-fetch-site': 'same-origin' }, browserless]) {
      const res = await fetch(add, { method: 'POST', headers: { authorization: BASIC, 'content-type': 'application/json', ...headers }, body: json });
      expect(res.status).toBe(200);
    }
    expect(await api.backlog(lane)).toBe(2);
    await api.redis.del(laneStateKeys(api.config.prefix, lane).wait);
  });

  it('marks every answer: no X-Powered-By, never framed, never cached', async () => {
    const answers = [
      await fetch(`${api.url}/admin/queues`, { headers: { authorization: BASIC } }),
      await fetch(`${api.url}/admin/queues/api/queues`, { headers: { authorization: BASIC } }),
      await fetch(`${api.url}/admin/queues/static/favicon.ico`, { headers: { authorization: BASIC } }),
      await fetch(`${api.url}/admin/queues`),
      await fetch(`${api.url}/admin/queues/api/queues/tool_call/pause`, { method: 'PUT', headers: { authorization: BASIC, 'sec-fetch-site': 'cross-site' } }),
    ];
    expect(answers.map((res) => res.status)).toEqual([200, 200, 200, 401, 403]);
    for (const res of answers) {
      expect([res.url, res.headers.get('x-powered-by'), res.headers.get('x-frame-options'), res.headers.get('content-security-policy'), res.headers.get('cache-control')]).toEqual([
        res.url,
        null,
        'DENY',
        "frame-ancestors 'none'",
        'no-store',
      ]);
    }
  });

  it("takes in Chromium the page's own changes (add a job, pause the lane) and refuses a form another site posts to it", async () => {
    const lane = 'file_write';
    const context = await (await launch()).newContext({ httpCredentials: { username: 'admin', password: PASSWORD } });
    // Another site (localhost is not the UI's 127.0.0.1) whose page posts a form to the UI.
    const attack = http.createServer((_req, res) => {
      res.setHeader('content-type', 'text/html');
      res.end(
        `<form id="f" method="POST" enctype="text/plain" action="${api.url}/admin/queues/api/queues/${lane}/add">` +
          `<input name='{"name":"csrf","data":{},"x":"' value='"}'></form><script>document.getElementById('f').submit()</script>`,
      );
    });
    attack.listen(0, '127.0.0.1');
    await once(attack, 'listening');
    try {
      const page = await context.newPage();
      const answer = page.waitForResponse((res) => res.url().endsWith(`/api/queues/${lane}/add`));
      await page.goto(`http://localhost:${(attack.address() as AddressInfo).port}/`);
      expect((await answer).status()).toBe(403);
      expect(await api.backlog(lane)).toBe(0);

      await page.goto(`${api.url}/admin/queues/queue/${lane}`);
      const menu = async (item: string) => {
        await page.locator('button:right-of(:text("No workers"))').first().click();
        await page.getByRole('menuitem', { name: item }).click();
      };
      await menu('Add job');
      await page.locator('#job-name').fill('from-the-ui');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await waitUntil(async () => (await api.backlog(lane)) === 1, { what: 'the job added in the UI' });
      await menu('Pause');
      await page.getByRole('button', { name: 'Confirm' }).click();
      await waitUntil(() => paused(lane), { what: 'the lane paused in the UI' });
    } finally {
      await context.close();
      attack.close();
      await api.redis.hdel(laneStateKeys(api.config.prefix, lane).meta, 'paused');
      await api.redis.del(laneStateKeys(api.config.prefix, lane).wait, laneStateKeys(api.config.prefix, lane).paused);
    }
  });
});
