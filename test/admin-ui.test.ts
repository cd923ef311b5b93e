// bull-board at /admin/queues: behind its own credential, and showing every lane in a real browser.
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';
import { startTestApi, type TestApi } from '../apps/api/test/harness';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'admin-ui-password-1';

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
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ httpCredentials: { username: 'admin', password: PASSWORD } });
    const page = await context.newPage();
    await page.goto(`${api.url}/admin/queues`);
    for (const lane of api.config.laneNames) {
      await page.getByText(lane, { exact: true }).first().waitFor({ timeout: 20_000 });
    }
    await context.close();
  });
});
