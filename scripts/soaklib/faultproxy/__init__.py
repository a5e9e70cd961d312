"""The fault-injecting S3 proxy (scripts/faultproxy.py documents it): http, proxy, faults, main."""
