-- The users directory for the admin search scenarios; :size profiles (psql -v size=N).
-- Varied names and addresses (first name, last name, a number, one of a few domains), so
-- that trigram selectivity is like a real directory's rather than every row sharing a word.
WITH first(n, v) AS (SELECT row_number() OVER (), v FROM unnest(ARRAY['ada','alan','grace',
       'linus','margaret','dennis','barbara','ken','frances','edsger','radia','tim','hedy',
       'john','katherine','donald','sophie','guido','anita','niklaus']) AS v),
     last(n, v) AS (SELECT row_number() OVER (), v FROM unnest(ARRAY['lovelace','turing',
       'hopper','torvalds','hamilton','ritchie','liskov','thompson','allen','dijkstra',
       'perlman','berners-lee','lamarr','mccarthy','johnson','knuth','wilson','rossum',
       'borg','wirth','kay','lamport','shamir','diffie','hellman','cerf','kahn']) AS v)
INSERT INTO profiles (id, email, name, role, is_active, source_version, created_at, updated_at)
SELECT gen_random_uuid(),
       f.v || '.' || l.v || i || '@' || (ARRAY['example.com','mail.example','corp.example'])[1 + i % 3],
       initcap(f.v) || ' ' || initcap(l.v) || ' ' || i,
       'user', i % 10 <> 0, 0, now() - make_interval(secs => i), now()
FROM generate_series(1, :size) AS i
JOIN first f ON f.n = 1 + i % 20
JOIN last l ON l.n = 1 + (i / 20) % 27;
ANALYZE profiles;
