"""CRIU smoke workload: a TCP listener and a bound UDP socket held open, and
an in-memory counter. Each TCP connection gets the counter's next value.
Started by hack/steps/criu.sh, dumped and restored by the CRIU it installs:
after the restore, the next answer must continue the count."""
import socket
import sys

port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 0))
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(8)
count = 0
while True:
    conn, _ = srv.accept()
    count += 1
    conn.sendall(b"%d\n" % count)
    conn.close()
