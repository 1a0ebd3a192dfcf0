//! Independent, deliberately naive re-implementations used as oracles by the fuzz targets: if the
//! optimised code under test and these disagree, one of them is wrong.
#![allow(dead_code)]

/// RFC 1071 sum, 16 bits at a time, with an odd trailing byte padded with zero, folded.
pub fn naive_sum(parts: &[&[u8]]) -> u16 {
    let mut bytes = Vec::new();
    for p in parts {
        bytes.extend_from_slice(p);
        if bytes.len() % 2 == 1 && !std::ptr::eq(*p, *parts.last().unwrap()) {
            // Only the last part may be odd; callers keep to that.
            panic!("odd part in the middle");
        }
    }
    if bytes.len() % 2 == 1 {
        bytes.push(0);
    }
    let mut sum: u32 = 0;
    for w in bytes.chunks(2) {
        sum += u32::from(w[0]) << 8 | u32::from(w[1]);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// True when `header` (an IPv4 header, options included) has a verifying checksum.
pub fn ipv4_header_ok(header: &[u8]) -> bool {
    naive_sum(&[header]) == 0xffff
}

/// True when the UDP datagram `udp` (exactly as long as its length field) verifies against the
/// pseudo-header, or carries no checksum.
pub fn udp_ok(src: [u8; 4], dst: [u8; 4], udp: &[u8]) -> bool {
    if udp[6] == 0 && udp[7] == 0 {
        return true;
    }
    let len = (udp.len() as u16).to_be_bytes();
    let pseudo = [src[0], src[1], src[2], src[3], dst[0], dst[1], dst[2], dst[3], 0, 17, len[0], len[1]];
    naive_sum(&[&pseudo, udp]) == 0xffff
}

/// What a correct UDP/IPv4/Ethernet receiver accepts for `frame`, computed from scratch: the source
/// address and port, the destination address and port, and the payload; `None` if it must be
/// dropped. Does not judge MAC/IP/port ownership (the caller does).
pub struct Accepted<'a> {
    pub dst_mac: [u8; 6],
    pub src_ip: [u8; 4],
    pub dst_ip: [u8; 4],
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

pub fn accept_udp(frame: &[u8]) -> Option<Accepted<'_>> {
    if frame.len() < 14 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let ip = &frame[14..];
    if ip.len() < 20 || ip[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ihl < 20 || ihl > ip.len() || total < ihl || total > ip.len() {
        return None;
    }
    if !ipv4_header_ok(&ip[..ihl]) {
        return None;
    }
    let frag = u16::from_be_bytes([ip[6], ip[7]]);
    if frag & 0x2000 != 0 || frag & 0x1fff != 0 || ip[9] != 17 {
        return None;
    }
    let udp = &ip[ihl..total];
    if udp.len() < 8 {
        return None;
    }
    let ulen = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
    if ulen < 8 || ulen > udp.len() {
        return None;
    }
    let udp = &udp[..ulen];
    let src_ip = [ip[12], ip[13], ip[14], ip[15]];
    let dst_ip = [ip[16], ip[17], ip[18], ip[19]];
    if !udp_ok(src_ip, dst_ip, udp) {
        return None;
    }
    let mut dst_mac = [0; 6];
    dst_mac.copy_from_slice(&frame[..6]);
    Some(Accepted {
        dst_mac,
        src_ip,
        dst_ip,
        src_port: u16::from_be_bytes([udp[0], udp[1]]),
        dst_port: u16::from_be_bytes([udp[2], udp[3]]),
        payload: &udp[8..],
    })
}
