-- placeholder: filled by the work that owns this number (session 11)
SELECT 1;
