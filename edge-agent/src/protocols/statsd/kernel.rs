//! Datagrams the kernel dropped on a UDP socket because its receive buffer was full: the
//! `drops` column of `/proc/net/udp` (or `udp6`) on the socket's line, found by its inode
//! (`/proc/self/fd/<fd>` links to `socket:[<inode>]`). Linux only; elsewhere `None`.

use std::os::fd::AsRawFd;

/// The socket's inode, if the platform tells it.
pub fn socket_inode(socket: &impl AsRawFd) -> Option<u64> {
    let link = std::fs::read_link(format!("/proc/self/fd/{}", socket.as_raw_fd())).ok()?;
    let text = link.to_str()?;
    text.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

/// The kernel's drop count for the UDP socket with `inode`.
pub fn drops(inode: u64) -> Option<u64> {
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .find_map(|table| drops_in(&table, inode))
}

/// The `drops` column of the line of `inode` in a `/proc/net/udp` table.
fn drops_in(table: &str, inode: u64) -> Option<u64> {
    table.lines().skip(1).find_map(|line| {
        let columns: Vec<&str> = line.split_whitespace().collect();
        // sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops
        if columns.len() < 13 || columns[9].parse::<u64>().ok()? != inode {
            return None;
        }
        columns[12].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_drops_column_of_the_socket_line() {
        let table = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
 1234: 0100007F:1FBD 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4242 2 0000000000000000 17
 1235: 0100007F:1FBE 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4343 2 0000000000000000 0
";
        assert_eq!(drops_in(table, 4242), Some(17));
        assert_eq!(drops_in(table, 4343), Some(0));
        assert_eq!(drops_in(table, 1), None);
    }

    #[test]
    fn a_bound_socket_is_found() {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        if let Some(inode) = socket_inode(&socket) {
            assert_eq!(drops(inode), Some(0));
        }
    }
}
