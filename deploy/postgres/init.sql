-- One PostgreSQL server, one database per kitshop service (run once, by the official
-- postgres image, on an empty data directory). The services apply their own
-- migrations at start.
CREATE DATABASE kitshop_user;
CREATE DATABASE kitshop_inventory;
CREATE DATABASE kitshop_order;
CREATE DATABASE kitshop_payment;
CREATE DATABASE kitshop_notification;
