import { InvalidOptionError } from '../errors.js';

/** The path of the WebSocket endpoint on an IM server. */
export const WS_PATH = '/ws';

/**
 * The WebSocket URL of an IM server given its base URL, as the seed passes it
 * (`http://im-server:8080`): `http` becomes `ws`, `https` becomes `wss`, and
 * `/ws` is appended to the base path. `ws:`/`wss:` URLs are taken as they are.
 *
 * @example
 * ```ts
 * webSocketUrl('http://im-server:8080');      // 'ws://im-server:8080/ws'
 * webSocketUrl('https://im.example.com/api'); // 'wss://im.example.com/api/ws'
 * ```
 */
export function webSocketUrl(imServerUrl: string): string {
  let url: URL;
  try {
    url = new URL(imServerUrl);
  } catch {
    throw new InvalidOptionError('imServerUrl', `${JSON.stringify(imServerUrl)} is not a URL`);
  }
  switch (url.protocol) {
    case 'http:':
      url.protocol = 'ws:';
      break;
    case 'https:':
      url.protocol = 'wss:';
      break;
    case 'ws:':
    case 'wss:':
      return url.toString();
    default:
      throw new InvalidOptionError('imServerUrl', `unsupported scheme ${url.protocol} (use http, https, ws or wss)`);
  }
  url.pathname = url.pathname.replace(/\/+$/, '') + WS_PATH;
  return url.toString();
}
