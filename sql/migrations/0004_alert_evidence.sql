-- Alerts carry a few raw values of their evidence (signature, url, domain, file_name) as a JSON
-- object, so the portal's "check details" and the mails show them without reading every event.
ALTER TABLE alerts ADD COLUMN IF NOT EXISTS evidence String DEFAULT '{}';
