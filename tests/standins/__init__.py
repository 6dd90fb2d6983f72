"""Tests of localdb and of its stand-ins for supabase_vault and pg_net, against the real cluster."""
