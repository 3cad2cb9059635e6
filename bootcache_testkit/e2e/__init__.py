"""End-to-end environment: real Glance, RabbitMQ, MariaDB, Cinder, Nova
and Placement services on 127.0.0.1 around the Ceph sandbox."""
