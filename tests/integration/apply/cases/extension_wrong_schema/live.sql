-- pg_net created in public by hand: not relocatable, so a warning instead of a change.
CREATE EXTENSION pg_net WITH SCHEMA public;
