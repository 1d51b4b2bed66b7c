//! The node's own routes, which overlay subnets must not hide.

use std::net::Ipv4Addr;

use swarm_core::model::Subnet;

/// The IPv4 networks this host routes to, read from `/proc/net/route`,
/// without the default route. Empty where the file cannot be read.
#[must_use]
pub fn host_routes() -> Vec<Subnet> {
    std::fs::read_to_string("/proc/net/route")
        .map(|text| parse_routes(&text))
        .unwrap_or_default()
}

/// The networks of a `/proc/net/route` table: destination and mask are
/// little-endian hex words. The default route (mask 0) is left out.
#[must_use]
pub fn parse_routes(table: &str) -> Vec<Subnet> {
    let mut out: Vec<Subnet> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let dest = u32::from_str_radix(f.get(1)?, 16).ok()?;
            let mask = u32::from_str_radix(f.get(7)?, 16).ok()?;
            let prefix = mask.count_ones();
            let prefix = u8::try_from(prefix).ok().filter(|p| *p > 0)?;
            Some(Subnet::containing(
                Ipv4Addr::from(dest.swap_bytes()),
                prefix,
            ))
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_kernel_table() {
        let table = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t0100A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
docker0\t000011AC\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n";
        let routes = parse_routes(table);
        assert_eq!(
            routes,
            vec![
                "172.17.0.0/16".parse().unwrap(),
                "192.168.0.0/24".parse().unwrap()
            ]
        );
    }
}
