import { isIP } from 'node:net';
import ipaddr from 'ipaddr.js';

/**
 * Cloud metadata endpoints that are not inside a range refused anyway (169.254.169.254,
 * fd00:ec2::254 and 100.100.100.200 are: link-local, unique-local, shared address space).
 */
const METADATA_ADDRESSES = new Set(['192.0.0.192']);

/**
 * Why an IP address may not be reached from the service, or undefined when it may: loopback,
 * private (RFC 1918, unique-local), link-local (cloud metadata), carrier-grade NAT, multicast,
 * reserved and documentation ranges, and IPv6 forms that embed an IPv4 address (mapped, NAT64,
 * 6to4, Teredo) unless the embedded address itself is public.
 */
export function addressProblem(address: string): string | undefined {
  if (!isIP(address)) return `${address} is not an IP address`;
  let ip = ipaddr.parse(address);
  if (ip.kind() === 'ipv6') {
    const v6 = ip as ipaddr.IPv6;
    if (v6.isIPv4MappedAddress()) ip = v6.toIPv4Address();
  }
  if (METADATA_ADDRESSES.has(ip.toString())) return `${address} is a cloud metadata address`;
  const range = ip.range();
  if (range === 'unicast') return undefined;
  return `${address} is in a ${RANGE_NAMES[range] ?? range} range`;
}

const RANGE_NAMES: Record<string, string> = {
  unspecified: 'unspecified',
  broadcast: 'broadcast',
  multicast: 'multicast',
  linkLocal: 'link-local (metadata)',
  loopback: 'loopback',
  carrierGradeNat: 'shared (carrier-grade NAT)',
  private: 'private',
  reserved: 'reserved',
  uniqueLocal: 'private (unique-local)',
  ipv4Mapped: 'IPv4-mapped',
  rfc6145: 'IPv4-translated',
  rfc6052: 'NAT64',
  '6to4': '6to4',
  teredo: 'Teredo',
  deprecatedSiteLocal: 'site-local',
};

/** The host of a URL without IPv6 brackets: `[::1]` → `::1`. */
export function bareHostname(url: URL): string {
  const host = url.hostname;
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}
