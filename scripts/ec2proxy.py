#!/usr/bin/env python3
"""The local cloud's EC2 front (between the tools and moto_server): its parts are the modules
of scripts/ec2front/ (their index is ec2front/__init__.py); this is the command localcloud
starts."""
from ec2front.front import main

if __name__ == "__main__":
    main()
