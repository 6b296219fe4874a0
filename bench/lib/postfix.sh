# postfix.sh: a private Postfix relay on loopback for comparisons (sourced, not run).
# Its own config, queue and data directories under one work directory, its own ports;
# the system's Postfix (if any) is not touched. Needs root (Postfix drops to the
# postfix user) and Debian's postfix package.

# postfix_start DIR LISTEN_PORT RELAY_PORT: relay everything from 127.0.0.0/8 to
# [127.0.0.1]:RELAY_PORT. Returns when the SMTP port answers.
postfix_start() {
  local dir=$1 port=$2 relay=$3
  command -v postfix >/dev/null || PATH=$PATH:/usr/sbin
  command -v postfix >/dev/null || { echo "postfix missing: apt-get install postfix" >&2; return 1; }
  [ "$(id -u)" -eq 0 ] || { echo "the Postfix comparison needs root" >&2; return 1; }
  mkdir -p "$dir/etc" "$dir/queue" "$dir/data"
  chown postfix:postfix "$dir/data"
  cat > "$dir/etc/main.cf" <<CF
compatibility_level = 3.6
queue_directory = $dir/queue
data_directory = $dir/data
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.localdomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:$relay
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = $dir/maillog
maillog_file_prefixes = $dir
CF
  # The packaged master.cf as shipped (the system's own /etc/postfix/master.cf may have
  # moved smtpd to another address or behind postscreen, and then nothing would listen on
  # our port), with our port for smtpd and no chroot (the chroot would need copies of
  # system files inside the private queue directory).
  local stock f
  for f in /usr/share/postfix/master.cf.dist /etc/postfix/master.cf.proto /etc/postfix/master.cf; do
    [ -f "$f" ] && { stock=$f; break; }
  done
  [ -n "${stock:-}" ] || { echo "no stock master.cf (postfix package incomplete?)" >&2; return 1; }
  awk -v listen="127.0.0.1:$port" 'BEGIN { OFS = "  " }
       /^#/ || /^[ \t]/ || NF < 8 { print; next }
       $1 == "smtp" && $2 == "inet" { smtpd = 1; $1 = listen; $5 = "n"; print; next }
       $2 == "inet" { next }  # no other listener: the system Postfix may hold its port
       { $5 = "n"; print }
       END { if (!smtpd) print listen, "inet", "n", "-", "n", "-", "-", "smtpd" }' \
    "$stock" > "$dir/etc/master.cf"
  postfix -c "$dir/etc" start >/dev/null 2>&1 || { tail -5 "$dir/maillog" >&2; return 1; }
  wait_port "$port"
}

postfix_stop() {
  local dir=$1
  [ -f "$dir/etc/main.cf" ] || return 0
  postfix -c "$dir/etc" stop >/dev/null 2>&1 || true
  local i
  for i in $(seq 100); do
    [ -f "$dir/queue/pid/master.pid" ] || return 0
    kill -0 "$(tr -d ' ' < "$dir/queue/pid/master.pid")" 2>/dev/null || return 0
    sleep 0.1
  done
}
