"""mimamori: turns a stream of UTM detections into graded alerts, mails, portal data and signals."""
