-- SQLite workload for tests/programs/run.sh: its output must be byte-identical
-- with and without the allocator preloaded. Everything is deterministic (no
-- random()); "random-ish" text comes from multiplicative hashing of row ids.
-- A large page cache, sorts, FTS5, JSON and window functions make the CLI
-- allocate blocks of many sizes.
PRAGMA cache_size = -65536;
PRAGMA journal_mode = WAL;

CREATE TABLE author(id INTEGER PRIMARY KEY, name TEXT NOT NULL, country TEXT NOT NULL);
CREATE TABLE post(
  id INTEGER PRIMARY KEY,
  author_id INTEGER NOT NULL REFERENCES author(id),
  title TEXT NOT NULL,
  body TEXT NOT NULL,
  data BLOB,
  score INTEGER NOT NULL,
  tags TEXT
);

WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
INSERT INTO author
SELECT i, 'author-' || printf('%06d', (i * 7919) % 1000003), char(65 + i % 23, 65 + (i * 7) % 19)
FROM n;

-- 60000 posts with bodies of 8 .. 3200 characters.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO post(id, author_id, title, body, data, score, tags)
SELECT i,
       1 + (i * 2654435761) % 3000,
       'post ' || printf('%x', (i * 40503) % 65536) || ' about ' || char(97 + i % 26, 97 + (i * 13) % 26, 97 + (i * 17) % 26),
       replace(hex(zeroblob(1 + (i * 31337) % 400)), '00', printf('%08x', (i * 2246822519) % 4294967296)),
       CAST(printf('%0*d', 1 + (i * 97) % 5000, i) AS BLOB),
       ((i * 48271) % 2147483647) % 1000,
       'tag' || (i % 17) || ',tag' || (i % 5) || ',tag' || ((i * 7) % 101)
FROM n;

SELECT 'rows', count(*), sum(length(body)), sum(length(data)), total(score) FROM post;

CREATE INDEX post_author ON post(author_id);
CREATE INDEX post_score ON post(score DESC, id);
CREATE INDEX author_country ON author(country, name);

SELECT 'by country', a.country, count(*), sum(p.score), max(length(p.body)), min(p.title)
FROM post p JOIN author a ON a.id = p.author_id
GROUP BY a.country ORDER BY a.country;

SELECT 'top authors', author_id, count(*) AS c, sum(score)
FROM post GROUP BY author_id ORDER BY c DESC, author_id LIMIT 15;

SELECT 'ranked', id, author_id, score, r FROM (
  SELECT id, author_id, score, rank() OVER (PARTITION BY author_id ORDER BY score DESC, id) AS r
  FROM post WHERE author_id % 250 = 1
) WHERE r <= 3 ORDER BY author_id, r;

-- Sorting long text makes the sorter buffer tens of MiB.
SELECT 'longest', id, length(body), substr(body, 1, 24) FROM post ORDER BY body DESC, id LIMIT 5;

UPDATE post SET body = body || body || substr(title, 1, 10) WHERE id % 7 = 0;
UPDATE post SET score = (score * 3) % 1001, data = zeroblob(length(data) * 2) WHERE author_id % 5 = 1;
DELETE FROM post WHERE id % 11 = 3;
DELETE FROM author WHERE id NOT IN (SELECT author_id FROM post);

SELECT 'after update', count(*), sum(length(body)), sum(length(data)), total(score) FROM post;

CREATE VIRTUAL TABLE post_fts USING fts5(title, tags);
INSERT INTO post_fts(rowid, title, tags) SELECT id, title, tags FROM post;
SELECT 'fts', count(*) FROM post_fts WHERE post_fts MATCH 'abc OR tag3';
SELECT 'fts top', rowid, title FROM post_fts WHERE post_fts MATCH 'tag7 AND about' ORDER BY rank, rowid LIMIT 5;

SELECT 'json', json_group_array(json_object('id', id, 'score', score))
FROM (SELECT id, score FROM post WHERE id % 1000 = 1 ORDER BY id);

CREATE TABLE summary AS
SELECT author_id, group_concat(id, ' ') AS ids, avg(score) AS mean
FROM post GROUP BY author_id;
SELECT 'summary', count(*), sum(length(ids)), printf('%.6f', avg(mean)) FROM summary;

VACUUM;
PRAGMA integrity_check;
SELECT 'hash post', hex(sha3_query('SELECT * FROM post ORDER BY id'));
SELECT 'hash author', hex(sha3_query('SELECT * FROM author ORDER BY id'));
SELECT 'hash summary', hex(sha3_query('SELECT * FROM summary ORDER BY author_id'));
