"""During Tune: the driver (`run`), the trainable, the callbacks that keep the record and the console, interrupts."""
