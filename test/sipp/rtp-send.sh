#!/bin/sh
# Streams a raw 8 kHz mu-law file as PCMU RTP in real time to $2:$3 with ffmpeg's RTP muxer (20 ms
# packets: 160 bytes of payload + 12 of header). sipp's <exec command> runs it for a second stream.
exec ffmpeg -nostdin -loglevel error -re -f mulaw -ar 8000 -ac 1 -i "$1" -c:a pcm_mulaw -f rtp "rtp://$2:$3?pkt_size=172" > /dev/null 2>&1
