// Where the built-in `http` handler may connect. Its jobs come from API callers, but it runs inside
// the deployment's network, where a URL can name what no caller should reach: a cloud's metadata
// service (169.254.169.254, which hands out credentials), the exporter, internal admin endpoints.
// And the handler returns what it read as the job's result, for the caller to fetch. So it
// connects to public addresses only, unless HTTP_HANDLER_ALLOWED_HOSTS names the host, the
// address or its network.
import { BlockList, isIP } from 'node:net';

/** Addresses that are not on the public internet: loopback, private, link-local, and the like. */
const NON_PUBLIC: ReadonlyArray<readonly [string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this network"
  ['10.0.0.0', 8, 'ipv4'],
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['127.0.0.0', 8, 'ipv4'],
  ['169.254.0.0', 16, 'ipv4'], // link-local: cloud metadata services
  ['172.16.0.0', 12, 'ipv4'],
  ['192.0.0.0', 24, 'ipv4'],
  ['192.168.0.0', 16, 'ipv4'],
  ['198.18.0.0', 15, 'ipv4'],
  ['224.0.0.0', 3, 'ipv4'], // multicast, reserved, broadcast
  ['::', 128, 'ipv6'],
  ['::1', 128, 'ipv6'],
  ['64:ff9b::', 96, 'ipv6'], // NAT64: an IPv4 address behind it
  ['fc00::', 7, 'ipv6'], // unique local
  ['fe80::', 10, 'ipv6'], // link-local
  ['ff00::', 8, 'ipv6'], // multicast
];

const nonPublic = new BlockList();
for (const [network, prefix, family] of NON_PUBLIC) nonPublic.addSubnet(network, prefix, family);

const HOST_NAME = /^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;

function familyOf(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** `[::1]` as a URL writes it, to `::1`. */
function bare(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/**
 * Checks one HTTP_HANDLER_ALLOWED_HOSTS entry: a host name, `*.` and a domain (its subdomains), an
 * IP address, or a network in CIDR notation. Returns what is wrong with it, or undefined.
 */
export function invalidAllowedHost(entry: string): string | undefined {
  const slash = entry.indexOf('/');
  if (slash >= 0) {
    const [network, bits] = [entry.slice(0, slash), entry.slice(slash + 1)];
    const max = isIP(network) === 4 ? 32 : isIP(network) === 6 ? 128 : 0;
    if (max === 0) return `"${entry}": expected an IP network such as 10.1.0.0/16`;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return `"${entry}": expected a prefix length from 0 to ${max}`;
    return undefined;
  }
  if (isIP(bare(entry))) return undefined;
  if (!HOST_NAME.test(entry.toLowerCase())) return `"${entry}": expected a host name, *.domain, an IP address or a CIDR network`;
  return undefined;
}

export class HttpDestinations {
  private readonly names = new Set<string>();
  private readonly domains: string[] = [];
  private readonly allowed = new BlockList();

  /** @param allowedHosts entries valid by invalidAllowedHost (loadConfig checks them) */
  constructor(allowedHosts: readonly string[] = []) {
    for (const entry of allowedHosts) {
      const invalid = invalidAllowedHost(entry);
      if (invalid) throw new Error(`HTTP_HANDLER_ALLOWED_HOSTS: ${invalid}`);
      const slash = entry.indexOf('/');
      if (slash >= 0) {
        const network = entry.slice(0, slash);
        this.allowed.addSubnet(network, Number(entry.slice(slash + 1)), familyOf(network));
      } else if (isIP(bare(entry))) {
        this.allowed.addAddress(bare(entry), familyOf(bare(entry)));
      } else if (entry.startsWith('*.')) {
        this.domains.push(entry.slice(1).toLowerCase());
      } else {
        this.names.add(entry.toLowerCase());
      }
    }
  }

  /** Whether the host name is allowed whatever it resolves to (named in the list). */
  allowsName(host: string): boolean {
    const name = host.toLowerCase().replace(/\.$/, '');
    return this.names.has(name) || this.domains.some((domain) => name.endsWith(domain));
  }

  /** Whether connecting to `address` is allowed: a public one, or one the list allows. */
  allowsAddress(address: string): boolean {
    const family = familyOf(address);
    return this.allowed.check(address, family) || !nonPublic.check(address, family);
  }

  /**
   * Why a request to `host` (a URL's hostname) resolving to `addresses` may not be made, or
   * undefined when it may. Every address must be allowed, since the connection may use any.
   */
  refusal(host: string, addresses: readonly string[]): string | undefined {
    if (this.allowsName(bare(host))) return undefined;
    const refused = addresses.filter((address) => !this.allowsAddress(address));
    if (refused.length === 0) return undefined;
    return (
      `${bare(host)} is not a public address (${refused.join(', ')}): the http handler calls only public addresses, ` +
      'and those HTTP_HANDLER_ALLOWED_HOSTS names'
    );
  }
}
