#!/usr/bin/env python3
"""Start Greenroom: ``python server.py --enable-modules=talkinghead,tts,classify``."""
import sys

from greenroom.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
