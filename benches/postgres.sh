# Sourced by the catalog benches: a throwaway PostgreSQL (Debian's, the newest installed) in
# "$work/pg", on a free loopback port, run as the unprivileged `postgres` user (initdb and
# postgres refuse root) and durable (the server's defaults). The caller's cleanup stops it:
#   [[ -z $pg_pid ]] || { kill -INT "$pg_pid"; wait "$pg_pid"; }
# Sets pgbin, port and pg_pid.
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2> /dev/null | sort -V | tail -n 1)
[[ -x $pgbin/initdb ]] || { echo "needs PostgreSQL: apt-get install -y postgresql" >&2; exit 2; }
command -v setpriv > /dev/null || { echo "needs setpriv: apt-get install -y util-linux" >&2; exit 2; }
pg_pid=

start_postgres() {
  chmod 755 "$work"
  mkdir "$work/pg" && chown postgres "$work/pg"
  setpriv --reuid=postgres --regid=postgres --clear-groups -- "$pgbin/initdb" -D "$work/pg/data" \
    -U postgres --auth=trust --encoding=UTF8 --no-locale > "$work/initdb.log" 2>&1
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  setpriv --reuid=postgres --regid=postgres --clear-groups -- timeout -s INT 1800 "$pgbin/postgres" \
    -D "$work/pg/data" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
    > "$work/pg.log" 2>&1 &
  pg_pid=$!
  for _ in $(seq 100); do "$pgbin/pg_isready" -h 127.0.0.1 -p "$port" -q && return; sleep 0.1; done
  cat "$work/pg.log" >&2
  echo "PostgreSQL did not start on 127.0.0.1:$port" >&2
  exit 1
}
