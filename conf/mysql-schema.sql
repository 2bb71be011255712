-- Postern's user database for MariaDB: hosted domains, their users and aliases.
-- One set of tables answers every service through the mysql_*.cf files next to
-- this one: which domains and addresses exist (virtual_mailbox_domains,
-- virtual_alias_domains, virtual_mailbox_maps, virtual_alias_maps), where mail
-- goes and how much may be kept (virtual_mailbox_maps, virtual_mailbox_limit_maps),
-- who may log in with which password (auth_password_maps), and which addresses a
-- logged-in user may send as (smtpd_sender_login_maps).
--
--   mariadb mail < mysql-schema.sql
--   CREATE USER 'postern'@'localhost' IDENTIFIED BY '...';
--   GRANT SELECT ON mail.* TO 'postern'@'localhost';            -- the daemons
--   CREATE USER 'posternadmin'@'localhost' IDENTIFIED BY '...';
--   GRANT SELECT, INSERT, UPDATE, DELETE ON mail.* TO 'posternadmin'@'localhost';  -- postern user/domain
--
-- Names are stored in lower case (Postfix looks keys up in lower case); postern
-- user and postern domain do that for you.

CREATE TABLE IF NOT EXISTS domains (
  domain    VARCHAR(255) NOT NULL PRIMARY KEY,   -- example.com
  -- 'mailbox': users have mailboxes here (virtual_mailbox_domains);
  -- 'alias':   every address is an alias (virtual_alias_domains).
  -- A domain is in one class only, and never also in mydestination or relay_domains.
  class     ENUM('mailbox', 'alias') NOT NULL DEFAULT 'mailbox',
  created   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS users (
  email     VARCHAR(255) NOT NULL PRIMARY KEY,   -- ann@example.com, the login name too
  domain    VARCHAR(255) NOT NULL,               -- the part after '@'
  -- A crypt(3) hash: yescrypt ($y$, the default of postern user and postpasswd),
  -- bcrypt ($2b$) or SHA-512 ($6$); auth refuses anything weaker.
  password  VARCHAR(255) NOT NULL,
  -- Relative to virtual_mailbox_base; ending in '/' means a Maildir, else an mbox file.
  maildir   VARCHAR(255) NOT NULL,
  -- Maildir++ quota in bytes; 0 means virtual_mailbox_quota (the default).
  quota     BIGINT UNSIGNED NOT NULL DEFAULT 0,
  -- 0: the user may not log in or send mail; mail for the address is still delivered.
  enabled   TINYINT(1) NOT NULL DEFAULT 1,
  created   TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
  KEY (domain),
  FOREIGN KEY (domain) REFERENCES domains (domain) ON DELETE RESTRICT
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;

CREATE TABLE IF NOT EXISTS aliases (
  -- info@example.com, or @example.com for a catch-all of the domain.
  address   VARCHAR(255) NOT NULL PRIMARY KEY,
  domain    VARCHAR(255) NOT NULL,
  -- Where mail goes: addresses separated by commas (virtual_alias_maps).
  goto      TEXT NOT NULL,
  KEY (domain),
  FOREIGN KEY (domain) REFERENCES domains (domain) ON DELETE RESTRICT
) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;
