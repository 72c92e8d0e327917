import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { POLICY } from './helpers.js';

/**
 * What Node's HTTP parser refuses before any route runs (oversized headers, malformed request
 * lines and headers, bad framing) is answered in the API's error shape like every other error,
 * over a raw socket as a misbehaving client or a scanner would send it.
 */

let b: TestBroker;
beforeAll(async () => {
  b = await startTestBroker({ policy: POLICY });
});
afterAll(async () => b?.close());

/** Sends `raw` on a fresh connection and returns everything the broker answered before closing. */
function send(raw: string): Promise<{ status: number; headers: string; body: string }> {
  const { port } = new URL(b.url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString();
    });
    socket.on('error', reject);
    socket.on('close', () => {
      const [head = '', body = ''] = text.split('\r\n\r\n');
      resolve({ status: Number(head.split(' ')[1]), headers: head, body });
    });
    socket.write(raw);
  });
}

describe('requests the HTTP parser refuses', () => {
  it.each([
    [
      'headers over 16 KiB',
      `GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
      /larger than the broker accepts/,
    ],
    ['a request line that is not HTTP', 'HELLO THERE\r\n\r\n', 400, /not valid HTTP\/1\.1/],
    [
      'a header with a space in its name',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n',
      400,
      /not valid HTTP\/1\.1/,
    ],
    [
      'two different Content-Lengths',
      'POST /v1/requests HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n{}',
      400,
      /Content-Length/,
    ],
    [
      'a malformed chunk size',
      'POST /v1/requests HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
      400,
      /chunked encoding is malformed/,
    ],
  ])('%s: answered in the API error shape', async (_what, raw, status, message) => {
    const r = await send(raw);
    expect(r.status, r.headers).toBe(status);
    expect(r.headers).toMatch(/content-type: application\/json/i);
    const body = JSON.parse(r.body) as { error: Record<string, unknown> };
    expect(Object.keys(body)).toEqual(['error']);
    expect(body.error).toMatchObject({ code: 'bad_request', hint: expect.any(String) });
    expect(body.error.message).toMatch(message);
    // Nothing of the request is echoed back.
    expect(r.body).not.toContain('aaaa');
  });

  it('keeps serving well-formed requests afterwards', async () => {
    const r = await send('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ status: 'ok' });
  });
});
