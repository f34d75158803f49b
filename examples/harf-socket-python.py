#!/usr/bin/env python3
# The Harf document's streaming socket, in Python: the whole WAV file is sent as binary, then the text
# "finalize"; every answer ({"segment_id": ...} or {"state": "PENDING"}) is printed as it comes, one per line.
# As the document describes it; only the host is ours (HARF_HOST, default localhost:8080).
# Standard library only (no websocket package to install).
#
#   python3 examples/harf-socket-python.py FILE.wav [TOKEN_KEY]
#
# The token defaults to $HARF_TOKEN, then to the one `npm start` generated in ./data/harf-token.
import base64, json, os, socket, struct, sys

HOST = os.environ.get('HARF_HOST', 'localhost:8080')
PATH = '/ws_api/transcribe_files/wav/sync/'


def token():
    if len(sys.argv) > 2:
        return sys.argv[2]
    if os.environ.get('HARF_TOKEN'):
        return os.environ['HARF_TOKEN']
    try:
        return open('data/harf-token').read().strip()
    except OSError:
        return 'TOKEN_KEY'


def connect():
    host, _, port = HOST.partition(':')
    sock = socket.create_connection((host, int(port or 80)))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f'GET {PATH} HTTP/1.1\r\nHost: {HOST}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
                  f'Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n'
                  f'Authorization: Token {token()}\r\n\r\n').encode())
    head = b''
    while b'\r\n\r\n' not in head:
        more = sock.recv(4096)
        if not more:
            sys.exit('connection closed during the handshake')
        head += more
    head, _, rest = head.partition(b'\r\n\r\n')
    status = head.split(b'\r\n')[0].decode()
    if ' 101 ' not in status + ' ':
        sys.exit(f'refused: {status} {rest.decode(errors="replace")}')
    return sock, rest


def send(sock, opcode, payload):
    # RFC 6455 5.2: FIN + opcode, a masked payload (every client frame is masked), 7/16/64-bit length.
    mask = os.urandom(4)
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack('!H', n)
    else:
        head += bytes([0x80 | 127]) + struct.pack('!Q', n)
    # XOR with the repeated mask, as one big integer (a byte loop takes seconds on a long file).
    masked = (int.from_bytes(payload, 'big') ^ int.from_bytes((mask * (n // 4 + 1))[:n], 'big')).to_bytes(n, 'big')
    sock.sendall(head + mask + masked)


class Reader:
    def __init__(self, sock, buf):
        self.sock, self.buf = sock, buf

    def take(self, n):
        while len(self.buf) < n:
            more = self.sock.recv(65536)
            if not more:
                raise EOFError
            self.buf += more
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def frame(self):
        b0, b1 = self.take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack('!H', self.take(2))[0]
        elif n == 127:
            n = struct.unpack('!Q', self.take(8))[0]
        return b0 & 0x0F, self.take(n)


def main():
    if len(sys.argv) < 2:
        sys.exit('usage: python3 examples/harf-socket-python.py FILE.wav [TOKEN_KEY]')
    sock, rest = connect()
    with open(sys.argv[1], 'rb') as f:
        send(sock, 0x2, f.read())  # the file, in wav format, as binary
    send(sock, 0x1, b'finalize')
    reader = Reader(sock, rest)
    while True:
        try:
            opcode, payload = reader.frame()
        except EOFError:
            break
        if opcode == 0x1:
            answer = json.loads(payload)
            print(json.dumps(answer, ensure_ascii=False), flush=True)
        elif opcode == 0x9:
            send(sock, 0xA, payload)
        elif opcode == 0x8:
            code = struct.unpack('!H', payload[:2])[0] if len(payload) >= 2 else 1005
            send(sock, 0x8, payload[:2])
            print(f'closed {code}', file=sys.stderr)
            break
    sock.close()


main()
