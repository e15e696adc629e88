//! The AWS actions each function's role must grant: what its adapters call, and what
//! Lambda does with the role for it (stream polling, the on-failure queue). Kept beside
//! the adapters so a change to a call changes this list in the same commit;
//! `scripts/check_permissions.py` fails when template.yaml grants more or less (log
//! delivery, granted to every function, aside).

/// (binary, actions). Transactions are authorized per item: a `Put` item needs
/// `dynamodb:PutItem`, an `Update` item `dynamodb:UpdateItem`, a `Delete` item
/// `dynamodb:DeleteItem`.
pub const PERMISSIONS: &[(&str, &[&str])] = &[
    (
        "create-integration",
        &[
            // The record, its name guard, its visibility entries, the idempotency key and
            // the audit event (one transaction of puts); the replay of an idempotent create.
            "dynamodb:PutItem",
            "dynamodb:GetItem",
            // Seals the secret; never opens it.
            "kms:Encrypt",
            // Derives the idempotency fingerprint key (once per process).
            "kms:GenerateMac",
        ],
    ),
    (
        "manage-integrations",
        &[
            "dynamodb:GetItem",
            // Update: the record; a rename moves the guard (delete + put); every change
            // puts its audit event.
            "dynamodb:UpdateItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            // Listing (the caller's partitions of the visibility index) and reading the
            // history (indexes); the listed records themselves, in one batch.
            "dynamodb:Query",
            "dynamodb:BatchGetItem",
            // Key rotation seals the new secret.
            "kms:Encrypt",
            // Derives the page token key (once per process).
            "kms:GenerateMac",
        ],
    ),
    (
        "test-connection",
        &[
            "dynamodb:GetItem",
            // The test result (and only it) and its audit event.
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            "kms:Decrypt",
            // Role delegation: assumes the platform's role (`aws::platform`).
            "sts:AssumeRole",
        ],
    ),
    (
        "provision-bucket",
        &[
            "dynamodb:GetItem",
            // Bucket status (claim, release, outcome) and the audit event of an outcome
            // or a request.
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            // The sweeper's index.
            "dynamodb:Query",
            "kms:Decrypt",
            // Role delegation: assumes the platform's role (`aws::platform`).
            "sts:AssumeRole",
            // Lambda's event source mapping polls the table's stream with this role.
            "dynamodb:DescribeStream",
            "dynamodb:GetRecords",
            "dynamodb:GetShardIterator",
            "dynamodb:ListStreams",
            // ... and sends records that failed every retry to the on-failure queue.
            "sqs:SendMessage",
        ],
    ),
    (
        "health-check",
        &[
            // The queue (the health index) and the records it names.
            "dynamodb:Query",
            "dynamodb:GetItem",
            // The check's verdict and its audit events (one transaction).
            "dynamodb:UpdateItem",
            "dynamodb:PutItem",
            // Opens stored secrets to test with them.
            "kms:Decrypt",
            // Role delegation: assumes the platform's role (`aws::platform`).
            "sts:AssumeRole",
        ],
    ),
];
