-- Reserved for issue 23 (traces): its tables arrive with its code. Migrations are numbered 1..n without gaps
-- (orvad/store/db.py), and the pieces of issue 23 land in parallel.
SELECT 1;
