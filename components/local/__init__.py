"""The local platform: every tier as Docker containers on one engine, built from Debian packages."""
