import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../api/errors.js';

/**
 * Requests Node's HTTP parser refuses before any route sees them (headers over its 16 KiB limit,
 * a malformed request line or header, a bad Content-Length or chunk, a request too slow to
 * arrive) answered like every other error, `{"error": {code, message, hint}}`, instead of Node's
 * or fastify's own bodies. The connection is closed after the answer: the parser cannot go on.
 * Attached to the server when it is created (so it applies while the broker is starting) and
 * given to fastify as its clientErrorHandler; the second call for one socket does nothing.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  if (err.code === 'ECONNRESET' || socket.destroyed || socket.writableEnded) return;
  const { status, message, hint } = describe(err.code);
  const body = JSON.stringify({ error: { code: ErrorCode.BadRequest, message, hint } });
  const answer =
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\n` +
    'Content-Type: application/json; charset=utf-8\r\n' +
    `Content-Length: ${Buffer.byteLength(body)}\r\n` +
    'X-Content-Type-Options: nosniff\r\n' +
    'Cache-Control: no-store\r\n' +
    'Connection: close\r\n\r\n' +
    body;
  // Closed once written: a client still sending (an endless header) does not keep it open.
  socket.end(answer, () => socket.destroy());
}

function describe(code: string | undefined): { status: number; message: string; hint: string } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return {
        status: 431,
        message: 'the request line and headers are larger than the broker accepts (16 KiB)',
        hint: 'send a shorter URL and fewer or smaller headers; tokens are a few KiB at most',
      };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
    case 'ERR_HTTP_HEADERS_TIMEOUT':
      return {
        status: 408,
        message: 'the request did not arrive in time',
        hint: 'check the network between the client and the broker, then try again',
      };
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return {
        status: 400,
        message: 'the request has an invalid or conflicting Content-Length',
        hint: 'send one Content-Length that matches the body, or chunked encoding alone',
      };
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return {
        status: 400,
        message: 'the request body’s chunked encoding is malformed',
        hint: 'use an HTTP/1.1 client library',
      };
    default:
      return {
        status: 400,
        message: `the request is not valid HTTP/1.1 (${(code ?? 'unparseable').replace(/^HPE_/, '').toLowerCase()})`,
        hint: 'use an HTTP/1.1 client library; the API is documented in docs/api.md',
      };
  }
}
