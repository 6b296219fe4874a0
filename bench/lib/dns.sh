# dns.sh: a private dnsmasq on loopback serving the MX and address records of the rollup benchmark (sourced, not run).
# Untrusted input: none (it answers only the names it is given; --no-resolv, nothing forwarded).

# dns_start DIR PORT DOMAINS SETS: dN.test (N < DOMAINS) has the single MX host
# mxK.test, K = N mod SETS, and mxK.test is 127.0.0.(10+K): DOMAINS destinations that
# roll up into SETS MX sets. Its pid joins BENCH_PIDS (common.sh); returns when it answers.
dns_start() {
  local dir=$1 port=$2 domains=$3 sets=$4 n k
  command -v dnsmasq >/dev/null || PATH=$PATH:/usr/sbin
  command -v dnsmasq >/dev/null || { echo "dnsmasq missing: apt-get install dnsmasq-base" >&2; return 1; }
  mkdir -p "$dir"
  {
    # Authoritative for .test: a name or type it lacks is NXDOMAIN or no data, never REFUSED
    # (which a resolver takes for a server failure), so AAAA lookups end at once.
    echo "local=/test/"
    for ((k = 0; k < sets; k++)); do echo "host-record=mx$k.test,127.0.0.$((10 + k))"; done
    for ((n = 0; n < domains; n++)); do echo "mx-host=d$n.test,mx$((n % sets)).test,10"; done
  } > "$dir/dnsmasq.conf"
  # No pid file and no user switch, so neither the system's dnsmasq nor its user matter.
  dnsmasq -k --port="$port" --listen-address=127.0.0.1 --bind-interfaces --no-resolv --no-hosts \
    --conf-file="$dir/dnsmasq.conf" --pid-file= --user=root --log-facility="$dir/dnsmasq.log" \
    > "$dir/dnsmasq.out" 2>&1 &
  BENCH_PIDS+=($!)
  wait_port "$port" || { tail -5 "$dir/dnsmasq.out" >&2; return 1; }  # it answers on TCP as well
}

# dns_domains DOMAINS: "d0.test,d1.test,..." for blaster send --domain.
dns_domains() {
  local n list=d0.test
  for ((n = 1; n < $1; n++)); do list+=",d$n.test"; done
  echo "$list"
}
